"""The one mutable object of the GDB side: the session we are attached to and per-stop caches."""

import gdb


class GdbState:
    """Session record, loaded module objects, and a cache cleared whenever the target resumes."""

    def __init__(self):
        self.session = None          # gdb_rkvm.session.Session, or None when not attached to one
        self.loaded_modules = {}     # module name -> (ko path, .text address)
        self.stop_cache = {}         # anything read from the target, valid until it runs again
        gdb.events.cont.connect(self._invalidate)
        gdb.events.stop.connect(self._invalidate)
        gdb.events.memory_changed.connect(self._invalidate)
        gdb.events.register_changed.connect(self._invalidate)

    def _invalidate(self, _event=None):
        self.stop_cache.clear()


STATE = GdbState()


class StopCheckBreakpoint(gdb.Breakpoint):
    """A breakpoint that decides in Python whether to stop. Reads made on earlier hits are stale:
    GDB does not report a stop (so nothing clears the cache) when stop() returns False."""

    def stop(self):
        STATE.stop_cache.clear()
        return self.check()

    def check(self) -> bool:
        raise NotImplementedError

"""The one mutable object of the GDB side: the session we are attached to and per-stop caches."""

import gdb


class GdbState:
    """Session record, loaded module objects, and a cache cleared whenever the target resumes."""

    def __init__(self):
        self.session = None          # gdb_rkvm.session.Session, or None when not attached to one
        self.loaded_modules = {}     # module name -> (ko path, .text address)
        self.stop_cache = {}         # anything read from the target, valid until it runs again
        self.in_command = False      # an rkvm command is running (its own resumes print nothing)
        self.notices = []            # lines from stop handlers, shown when that command ends
        gdb.events.cont.connect(self._invalidate)
        gdb.events.stop.connect(self._invalidate)
        gdb.events.memory_changed.connect(self._invalidate)
        gdb.events.register_changed.connect(self._invalidate)

    def _invalidate(self, _event=None):
        self.stop_cache.clear()


STATE = GdbState()


def notice(line: str) -> None:
    """Tell the user something noticed at a stop: now, or after the rkvm command that is running
    (whose quiet resumes would swallow it)."""
    if STATE.in_command:
        STATE.notices.append(line)
    else:
        gdb.write(line + "\n")


class StopCheckBreakpoint(gdb.Breakpoint):
    """A breakpoint that decides in Python whether to stop. Reads made on earlier hits are stale:
    GDB does not report a stop (so nothing clears the cache) when stop() returns False."""

    def stop(self):
        STATE.stop_cache.clear()
        return self.check()

    def check(self) -> bool:
        raise NotImplementedError


_PENDING_FACTORY = []


def quietly(factory):
    """Call `factory()` (which creates a breakpoint) with GDB's own messages captured: a pending
    breakpoint otherwise prints 'Function "..." not defined.' every time one is made."""
    _PENDING_FACTORY.append(factory)
    try:
        gdb.execute("python from gdb_rkvm.target.gdb_state import _run_pending; _run_pending()", to_string=True)
    finally:
        factory_result = _PENDING_FACTORY.pop()
    return factory_result


def _run_pending():
    _PENDING_FACTORY[-1] = _PENDING_FACTORY[-1]()

"""The one mutable object of the GDB side: the session we are attached to and per-stop caches."""

import contextlib

import gdb


class GdbState:
    """Session record, loaded module objects, and a cache cleared whenever the target resumes."""

    def __init__(self):
        self.session = None          # gdb_rkvm.qemu.session.Session, or None when not attached to one
        self.loaded_modules = {}     # module name -> (ko path, .text address), while GDB has the objfile
        self.module_dirs = []        # where .ko files are searched (profile's module_dirs, lx-symbols DIRs)
        self.stop_cache = {}         # anything read from the target, valid until it runs again
        self.in_command = False      # an rkvm command is running (its own resumes print nothing)
        self.notices = []            # lines from stop handlers, shown when that command ends
        self.kaslr = {"slide": 0, "known": False, "how": "not checked yet"}  # target/kaslr.py
        self.el2_elfs = {}           # EL2 ELF path -> load offset (target/el2_symbols.py)
        self.vbar_seen = {}          # CPU -> last VBAR_EL2 seen at a stop (target/vbar_watch.py)
        self.vbar_moves = []         # VBAR_EL2 moves noticed at stops, oldest first
        self.hvc_catch = None        # the armed `rkvm hvc catch`, if any
        self.exit_catch = None       # the armed `rkvm exit catch`, if any
        self.psci_watch = None       # the armed `rkvm psci --watch` (target/psci.py)
        self.vmlinux_reloaded = False  # GDB loaded vmlinux again since we last checked its offset
        self.phys = None             # direct guest RAM reader for this connection (target/physmem.py)
        self.phys_checked = False
        self.phys_how = "not chosen yet"
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
        gdb.execute("python from gdb_rkvm.live.gdb_state import _run_pending; _run_pending()", to_string=True)
    finally:
        factory_result = _PENDING_FACTORY.pop()
    return factory_result


def _run_pending():
    _PENDING_FACTORY[-1] = _PENDING_FACTORY[-1]()


# What an rkvm command needs while it runs; the user's own values are put back afterwards.
COMMAND_SETTINGS = {"pagination": "off", "confirm": "off"}


def _setting_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "unlimited" if value is None else str(value)


@contextlib.contextmanager
def command_settings(extra: dict[str, str] | None = None):
    """Set GDB settings for the duration of one command (pagination off, confirm off, and `extra`
    such as {"auto-load python-scripts": "off"}), then restore exactly what the user had."""
    wanted = {**COMMAND_SETTINGS, **(extra or {})}
    saved = {}
    for name, value in wanted.items():
        saved[name] = _setting_text(gdb.parameter(name))
        if saved[name] != value:
            gdb.execute(f"set {name} {value}", to_string=True)
    try:
        yield
    finally:
        for name, value in saved.items():
            if _setting_text(gdb.parameter(name)) != value:
                gdb.execute(f"set {name} {value}", to_string=True)


def rkvm_setting(name: str, default: bool) -> bool:
    """The value of `set rkvm NAME` (commands/settings.py declares them), or `default` before the
    parameter exists."""
    try:
        return bool(gdb.parameter(f"rkvm {name}"))
    except (gdb.error, RuntimeError):
        return default

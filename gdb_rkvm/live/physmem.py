"""Which reader serves guest physical memory for this connection: the session's RAM file, QEMU's own
memory for a QEMU we did not start (`--attach`: gpa2hva + /proc/PID/mem when permitted), or nothing
(then gdb_target reads through the gdbstub).

Chosen once per connection, at the first physical read, and checked then: one page read both ways
must be equal, or the direct reader is not used (`rkvm status` says why). Closed when the connection
goes away.
"""

import gdb

from gdb_rkvm.qemu import guest_ram

from gdb_rkvm.qemu import qemu_process
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live.gdb_state import STATE

_CHECK_SIZE = 4096


def backend():
    """The direct RAM reader (covers()/read()), or None: read through the gdbstub."""
    if STATE.phys_checked:
        return STATE.phys
    STATE.phys_checked = True
    STATE.phys, STATE.phys_how = None, "gdbstub (physical-memory mode)"
    sess = STATE.session
    if sess is None:
        return None
    try:
        reader = _open(sess)
    except RkvmError as e:
        STATE.phys_how = f"gdbstub ({e})"
        return None
    if reader is None:
        return None
    try:
        _verify(reader, sess)
    except (RkvmError, gdb.error) as e:   # a lost connection too: the mapping is closed either way
        reader.close()
        STATE.phys_how = f"gdbstub ({e})"
        return None
    STATE.phys, STATE.phys_how = reader, reader.describe()
    _watch_connection()
    return reader


def _open(sess):
    if not sess.external:
        if sess.ram_fd < 0:
            raise RkvmError("this session keeps guest RAM inside QEMU: started without a RAM file")
        return guest_ram.open_session_ram(sess)
    pid = qemu_process.pid_serving(sess.gdb_address)
    if pid is None:
        raise RkvmError("the attached QEMU's process is not visible to us")

    def gpa2hva(pa: int) -> str:
        try:
            return gdb.execute(f"monitor gpa2hva {pa:#x}", to_string=True)
        except gdb.error as e:
            raise RkvmError(str(e)) from None

    return guest_ram.ProcessMemory(pid, gpa2hva)


def _verify(reader, sess) -> None:
    """One page read directly and through the gdbstub must match (catches a wrong RAM base)."""
    from gdb_rkvm.live import gdb_target as t
    base = sess.ram_base if not sess.external else 0x40000000
    if not reader.covers(base, _CHECK_SIZE):
        raise RkvmError(f"no guest RAM at PA {base:#x} through {reader.name}")
    direct = reader.read(base, _CHECK_SIZE)
    if direct != t.gdbstub_read_physical(base, _CHECK_SIZE):
        raise RkvmError(f"{reader.name} does not match the gdbstub at PA {base:#x}: not used")


_WATCHING = []


def _watch_connection() -> None:
    if _WATCHING:
        return
    _WATCHING.append(True)
    for name in ("exited", "connection_removed"):
        registry = getattr(gdb.events, name, None)
        if registry is not None:
            registry.connect(_forget)


def _forget(_event=None) -> None:
    """The connection (or the process) went away: unmap, and choose again at the next read."""
    if STATE.phys is not None:
        STATE.phys.close()
    STATE.phys, STATE.phys_checked = None, False
    STATE.phys_how = "not chosen yet"


def describe() -> str:
    return STATE.phys_how

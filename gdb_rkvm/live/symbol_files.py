"""The symbol files GDB holds, kept right whoever (re)loads them.

vmlinux must sit at the KASLR slide and each module's .ko must be loaded once, at its load
address, whether the reload came from rkvm, from the kernel's own `lx-symbols`, or from a user's
`file` / `symbol-file`. GDB's objfile events are the one source of truth: a module counts as loaded
while GDB has its objfile, and a vmlinux that appears at the wrong offset is moved back.
"""

from pathlib import Path

import gdb

from gdb_rkvm.arch.fields import MASK64
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import UnsafeArgument, gdb_arg
from gdb_rkvm.live.gdb_state import STATE, command_settings, notice

KERNEL_HALF = 1 << 63
NO_AUTOLOAD = {"auto-load python-scripts": "off"}


def quote_path(path: str | Path) -> str:
    """`path` as one argument of a GDB file command (guest_text.gdb_arg), or RkvmError for a path
    GDB cannot be given safely."""
    try:
        return gdb_arg(path)
    except UnsafeArgument as e:
        raise RkvmError(f"path refused: {e}") from None


def _same_file(a: str | None, b: str | Path | None) -> bool:
    if not a or not b:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def objfile_for(path: str | Path) -> gdb.Objfile | None:
    """GDB's objfile for the file at `path`, if GDB has one."""
    for obj in gdb.objfiles():
        if _same_file(obj.filename, path):
            return obj
    return None


def gdb_offset(vmlinux: str) -> int | None:
    """How far GDB's copy of vmlinux's symbols is moved from the file's link addresses
    (0 = not moved), taken from start_kernel; None when GDB has no vmlinux."""
    from gdb_rkvm.live.kaslr import link_address  # noqa: PLC0415  kaslr imports this module
    obj = objfile_for(vmlinux)
    link = link_address(vmlinux, "start_kernel")
    if obj is None or link is None:
        return None
    sym = obj.lookup_global_symbol("start_kernel")
    if sym is None:
        return None
    return (int(sym.value().address) - link) & MASK64


def load_vmlinux(vmlinux: str, slide: int = 0) -> None:
    """Load vmlinux's symbols moved by `slide`. GDB's auto-load of the kernel's vmlinux-gdb.py is
    held off for this one load: rkvm loads those helpers itself, once."""
    offset = slide if slide < KERNEL_HALF else slide - (1 << 64)
    with command_settings(NO_AUTOLOAD):
        gdb.execute(f"symbol-file -o {offset:#x} {quote_path(vmlinux)}", to_string=True)


def wanted_slide() -> int | None:
    """The slide vmlinux must be at: the KASLR slide once known, 0 for a kernel that is not
    randomized, None while a randomized kernel's slide is still unknown."""
    from gdb_rkvm.live.kaslr import status  # noqa: PLC0415
    st = status()
    if st.get("known"):
        return st["slide"]
    return None if st.get("pending") else 0


def _session_vmlinux() -> str | None:
    sess = STATE.session
    return sess.vmlinux if sess is not None and sess.vmlinux else None


def _put_vmlinux_back() -> None:
    vmlinux, slide = _session_vmlinux(), wanted_slide()
    if vmlinux is None or slide is None:
        return
    current = gdb_offset(vmlinux)
    if current is None or current == slide:
        return
    try:
        load_vmlinux(vmlinux, slide)
    except (gdb.error, RkvmError) as e:
        notice(f"rkvm: vmlinux was reloaded without the KASLR slide and could not be moved back: {e}")
        return
    notice(f"rkvm: vmlinux was reloaded at offset {current:#x}: moved back to the KASLR slide {slide:#x}")


def after_reload() -> None:
    """Run after a command that may have reloaded vmlinux (GDB's hookpost-file/-symbol-file, rkvm
    commands, stops): put it back at the slide if it moved."""
    if STATE.vmlinux_reloaded:
        STATE.vmlinux_reloaded = False
        _put_vmlinux_back()


def on_new_objfile(event) -> None:
    """Note that vmlinux was (re)loaded. Nothing is reloaded here: GDB is still inside that load
    (and a gdb.post_event left queued in batch mode crashes GDB 13 at exit), so the move happens in
    after_reload(), once the command is done."""
    if _same_file(event.new_objfile.filename, _session_vmlinux()):
        STATE.vmlinux_reloaded = True


def on_free_objfile(event) -> None:
    """Forget what GDB forgot: a module or EL2 ELF whose objfile is gone is no longer loaded."""
    name = event.objfile.filename
    for mod, (ko, _text) in list(STATE.loaded_modules.items()):
        if _same_file(name, ko):
            del STATE.loaded_modules[mod]
    for elf in list(STATE.el2_elfs):
        if _same_file(name, elf):
            del STATE.el2_elfs[elf]


# GDB runs a `hookpost-CMD` user command after CMD, from the CLI, MI's console and gdb.execute alike.
RELOADING_COMMANDS = ("file", "symbol-file")
_HOOK_BODY = "python from gdb_rkvm.live import symbol_files; symbol_files.after_reload()"


def _install_hooks() -> None:
    for cmd in RELOADING_COMMANDS:
        try:
            existing = gdb.execute(f"show user hookpost-{cmd}", to_string=True)
        except gdb.error:
            existing = ""
        if existing.strip() and _HOOK_BODY not in existing:
            notice(f"rkvm: you have your own hookpost-{cmd}: vmlinux is put back at the KASLR slide at the next "
                   "rkvm command or stop instead")
            continue
        gdb.execute(f"define hookpost-{cmd}\n{_HOOK_BODY}\nend", to_string=True)


def watch() -> None:
    """Follow GDB's objfile events and the commands that reload symbols."""
    gdb.events.new_objfile.connect(on_new_objfile)
    gdb.events.free_objfile.connect(on_free_objfile)
    gdb.events.stop.connect(lambda _event: after_reload())
    _install_hooks()


def vmlinux_at_slide(what: str) -> tuple[str, int]:
    """(the session's vmlinux, the slide its runtime addresses are at), for code that finds
    `what` in vmlinux's own bytes; RkvmError while either is not known."""
    sess = STATE.session
    if sess is None or not sess.vmlinux:
        raise RkvmError(f"no vmlinux: {what} are found in its text")
    if STATE.kaslr.get("pending"):
        raise RkvmError("the KASLR slide is not known yet: boot further first")
    return sess.vmlinux, STATE.kaslr.get("slide") or 0

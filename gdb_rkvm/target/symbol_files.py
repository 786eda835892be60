"""The symbol files GDB holds, kept right whoever (re)loads them.

vmlinux must sit at the KASLR slide and each module's .ko must be loaded once, at its load
address, whether the reload came from rkvm, from the kernel's own `lx-symbols`, or from a user's
`file` / `symbol-file`. GDB's objfile events are the one source of truth: a module counts as loaded
while GDB has its objfile, and a vmlinux that appears at the wrong offset is moved back.
"""

from pathlib import Path

import gdb

from ..errors import RkvmError
from .gdb_state import STATE, command_settings, notice

KERNEL_HALF = 1 << 63
NO_AUTOLOAD = {"auto-load python-scripts": "off"}


def quote_path(path: str | Path) -> str:
    """`path` as one argument of a GDB file command (symbol-file, add-symbol-file...): double
    quotes, backslash-escaped; spaces survive. Control characters cannot be quoted: refused."""
    text = str(path)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise RkvmError(f"refusing a path with control characters: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    from .kaslr import link_address  # noqa: PLC0415  kaslr imports this module
    obj = objfile_for(vmlinux)
    link = link_address(vmlinux, "start_kernel")
    if obj is None or link is None:
        return None
    sym = obj.lookup_global_symbol("start_kernel")
    if sym is None:
        return None
    return (int(sym.value().address) - link) & ((1 << 64) - 1)


def load_vmlinux(vmlinux: str, slide: int = 0) -> None:
    """Load vmlinux's symbols moved by `slide`. GDB's auto-load of the kernel's vmlinux-gdb.py is
    held off for this one load: rkvm loads those helpers itself, once."""
    offset = slide if slide < KERNEL_HALF else slide - (1 << 64)
    with command_settings(NO_AUTOLOAD):
        gdb.execute(f"symbol-file -o {offset:#x} {quote_path(vmlinux)}", to_string=True)


def wanted_slide() -> int | None:
    """The slide vmlinux must be at: the KASLR slide once known, 0 for a kernel that is not
    randomized, None while a randomized kernel's slide is still unknown."""
    from .kaslr import status  # noqa: PLC0415
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


def on_new_objfile(event) -> None:
    """A vmlinux that someone (re)loaded at another offset than the slide is put back; after the
    command that loaded it, since GDB is still inside that load now."""
    if _same_file(event.new_objfile.filename, _session_vmlinux()):
        gdb.post_event(_put_vmlinux_back)


def on_free_objfile(event) -> None:
    """Forget what GDB forgot: a module or EL2 ELF whose objfile is gone is no longer loaded."""
    name = event.objfile.filename
    for mod, (ko, _text) in list(STATE.loaded_modules.items()):
        if _same_file(name, ko):
            del STATE.loaded_modules[mod]
    for elf in list(STATE.el2_elfs):
        if _same_file(name, elf):
            del STATE.el2_elfs[elf]


def watch() -> None:
    """Follow GDB's objfile events from now on."""
    gdb.events.new_objfile.connect(on_new_objfile)
    gdb.events.free_objfile.connect(on_free_objfile)

"""KASLR: find how far the kernel image was moved at boot, and relocate vmlinux's symbols by it.

VBAR_EL1 holds the runtime address of the kernel's `vectors` (set in __primary_switched, after the
kernel relocated itself); its difference from vmlinux's `vectors` is the slide. No help from the
guest is needed. `symbol-file -o SLIDE vmlinux` then moves every symbol.
"""

from pathlib import Path

import gdb
from elftools.elf.elffile import ELFFile

from ..errors import RkvmError
from ..guest_text import UnsafeArgument, gdb_arg
from . import gdb_target as t
from .gdb_state import STATE

KERNEL_HALF = 1 << 63


def _state() -> dict:
    return STATE.__dict__.setdefault("kaslr", {"slide": 0, "known": False, "how": "not checked yet"})


def link_address(vmlinux: str, name: str = "vectors") -> int | None:
    """`name`'s address in the vmlinux file itself (unrelocated)."""
    try:
        with open(vmlinux, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            for sym in symtab.get_symbol_by_name(name) or []:
                return sym["st_value"]
    except (OSError, ValueError):
        return None
    return None


def kaslr_capable(vmlinux: str) -> bool:
    """Whether this vmlinux can be randomized (CONFIG_RANDOMIZE_BASE leaves kaslr_early_init behind)."""
    return link_address(vmlinux, "__pi_kaslr_early_init") is not None or \
        link_address(vmlinux, "kaslr_early_init") is not None


def detect(vmlinux: str) -> dict:
    """{'known', 'slide', 'how', 'vbar_el1', 'vectors'}: the slide from VBAR_EL1 of a CPU at EL1."""
    link = link_address(vmlinux)
    if link is None:
        raise RkvmError(f"{vmlinux} has no `vectors` symbol: cannot work out the KASLR slide")
    for cpu, _ in t.cpu_threads():
        try:
            vbar = t.read_register("VBAR_EL1", cpu)
        except RkvmError:
            continue
        if vbar & KERNEL_HALF and vbar & 0x7FF == 0:
            slide = (vbar - link) & t.MASK64
            if slide & 0xFFFF:
                continue  # not vectors (early boot code may briefly use another table)
            return {"known": True, "slide": slide, "vbar_el1": vbar, "vectors": link,
                    "how": f"VBAR_EL1 of CPU {cpu} = {vbar:#x}, vmlinux's vectors = {link:#x}"}
    return {"known": False, "slide": None, "vbar_el1": None, "vectors": link,
            "how": "the kernel has not set VBAR_EL1 yet (it relocates itself early in boot, MMU on)"}


def apply(vmlinux: str, slide: int) -> str:
    """Reload vmlinux's symbols moved by `slide` (no-op if already there)."""
    st = _state()
    if st.get("known") and st.get("slide") == slide:
        return f"rkvm: KASLR slide {slide:#x} already applied"
    offset = slide if slide < KERNEL_HALF else slide - (1 << 64)
    try:
        gdb_arg(vmlinux)
    except UnsafeArgument as e:
        raise RkvmError(f"vmlinux path refused: {e}") from None
    gdb.execute("set auto-load python-scripts off", to_string=True)  # the lx-* helpers are loaded already
    try:
        gdb.execute(f"symbol-file -o {offset:#x} {gdb_arg(Path(vmlinux).resolve())}", to_string=True)
    finally:
        gdb.execute("set auto-load python-scripts on", to_string=True)
    st.update(slide=slide, known=True)
    STATE.loaded_modules.clear()       # module objfiles went with the old symbol table
    STATE.__dict__.get("el2_elfs", {}).clear()
    return f"rkvm: KASLR slide {slide:#x}: vmlinux symbols relocated"


def update(vmlinux: str) -> str | None:
    """Detect and apply; returns a line to show when something changed (or is unknown)."""
    st = _state()
    found = detect(vmlinux)
    st["how"] = found["how"]
    if not found["known"]:
        st["known_now"] = False
        return None
    st["known_now"] = True
    if st.get("known") and st.get("slide") == found["slide"]:
        return None
    return apply(vmlinux, found["slide"])


def status() -> dict:
    return dict(_state())


def vmlinux_path() -> str | None:
    sess = STATE.session
    if sess is None or not sess.vmlinux or not Path(sess.vmlinux).is_file():
        return None
    return sess.vmlinux

"""KASLR: find how far the kernel image was moved at boot, and relocate vmlinux's symbols by it.

VBAR_EL1 holds the runtime address of the kernel's `vectors` (set in __primary_switched, after the
kernel relocated itself); its difference from vmlinux's `vectors` is the slide. No help from the
guest is needed. `symbol-file -o SLIDE vmlinux` then moves every symbol.
"""

from pathlib import Path


from gdb_rkvm.model import elf_symtab
from gdb_rkvm.arch import vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import symbol_files
from gdb_rkvm.live.gdb_state import STATE

KERNEL_HALF = 1 << 63


def _state() -> dict:
    return STATE.kaslr


def link_address(vmlinux: str, name: str = "vectors") -> int | None:
    """`name`'s address in the vmlinux file itself (unrelocated)."""
    names = elf_symtab.KERNEL_NAMES if name in elf_symtab.KERNEL_NAMES else (name,)
    return elf_symtab.link_addresses(vmlinux, names).get(name)


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
        if vbar & KERNEL_HALF and vectors.is_aligned(vbar):
            slide = (vbar - link) & t.MASK64
            if slide & 0xFFFF:
                continue  # not vectors (early boot code may briefly use another table)
            return {"known": True, "slide": slide, "vbar_el1": vbar, "vectors": link,
                    "how": f"VBAR_EL1 of CPU {cpu} = {vbar:#x}, vmlinux's vectors = {link:#x}"}
    return {"known": False, "slide": None, "vbar_el1": None, "vectors": link,
            "how": "the kernel has not set VBAR_EL1 yet (it relocates itself early in boot, MMU on)"}


def apply(vmlinux: str, slide: int) -> str:
    """Reload vmlinux's symbols moved by `slide` (no-op if already there). Module and EL2 ELF
    objfiles stay where they are: they were placed at runtime addresses, which the slide does not
    change."""
    st = _state()
    if st.get("known") and st.get("slide") == slide and symbol_files.gdb_offset(vmlinux) == slide:
        return f"rkvm: KASLR slide {slide:#x} already applied"
    st.update(slide=slide, known=True)   # before the load: the objfile watcher reads it
    symbol_files.load_vmlinux(vmlinux, slide)
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
    if symbol_files.gdb_offset(vmlinux) == found["slide"]:
        st.update(slide=found["slide"], known=True)   # GDB already has vmlinux there: nothing to reload
        return None
    return apply(vmlinux, found["slide"])


def status() -> dict:
    return dict(_state())


def vmlinux_path() -> str | None:
    sess = STATE.session
    if sess is None or not sess.vmlinux or not Path(sess.vmlinux).is_file():
        return None
    return sess.vmlinux

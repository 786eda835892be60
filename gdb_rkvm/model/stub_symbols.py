"""Symbols of the EL2 stub ELF (linked at 0), to name an offset in a stub page with no GDB symbols loaded."""

import bisect
from functools import lru_cache
from pathlib import Path

from gdb_rkvm.paths import REPO

STUB_ELF = REPO / "stub" / "build" / "el2_stub.elf"
STUB_JT_ELF = REPO / "stub" / "build" / "el2_stub_jt.elf"   # the variant rkvm.ko's mode=jump-table runs


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[list[int], list[str]]:
    from elftools.elf.elffile import ELFFile   # imported when needed: not at GDB's start
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        pairs = sorted({(s["st_value"], s.name) for s in symtab.iter_symbols()
                        if s.name and s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT")
                        and not s.name.startswith("$")})
    # several names at one address (rkvm_stub_vectors = rkvm_vec_cur_sp0_sync): keep the most specific
    best: dict[int, str] = {}
    for addr, name in pairs:
        if addr not in best or name.startswith("rkvm_vec_"):
            best[addr] = name
    addrs = sorted(best)
    return addrs, [best[a] for a in addrs]


def name_offset(offset: int, elf: Path = STUB_ELF) -> str | None:
    """'symbol+0x..' for an offset from the stub's base, or None if the ELF is missing or offset < 0."""
    if offset < 0 or not Path(elf).is_file():
        return None
    addrs, names = _load(str(elf), Path(elf).stat().st_mtime)
    i = bisect.bisect_right(addrs, offset) - 1
    if i < 0:
        return None
    delta = offset - addrs[i]
    return names[i] + (f"+{delta:#x}" if delta else "")

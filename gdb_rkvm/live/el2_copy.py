"""The EL2 code at VBAR_EL2 against its ELF (el2lint.compare), read from the target's physical memory."""

from functools import lru_cache
from pathlib import Path

from gdb_rkvm.model.el2lint import compare
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.stub_symbols import STUB_ELF, STUB_JT_ELF
from gdb_rkvm.live import gdb_target as t


@lru_cache(maxsize=8)
def _expected(path: str, mtime: float) -> compare.Expected:
    return compare.expected(path)


def expected(elf: Path) -> compare.Expected:
    elf = Path(elf)
    if not elf.is_file():
        raise RkvmError(f"EL2 code ELF not found: {elf}")
    return _expected(str(elf), elf.stat().st_mtime)


def check(elf: Path, vbar: int, base: int | None = None) -> compare.CopyCheck:
    """Compare the ELF's code with memory: at `base` (the ELF's address 0), or placed so that its
    vector table is at `vbar`."""
    exp = expected(elf)
    start = base if base is not None else vbar - exp.table
    memory = t.read_physical(start, exp.size)
    return compare.compare(exp, memory, start)


def lab_stub_check(vbar: int) -> compare.CopyCheck | None:
    """The rkvm stub page at `vbar` against the lab stub ELF it matches best (default or jump-table)."""
    best = None
    for elf in (STUB_ELF, STUB_JT_ELF):
        if not elf.is_file():
            continue
        chk = check(elf, vbar)
        if chk.not_this_code:
            continue
        if best is None or len(chk.diffs) < len(best.diffs):
            best = chk
    return best

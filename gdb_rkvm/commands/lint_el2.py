import gdb

from gdb_rkvm.model import el2lint
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import el2_symbols
from gdb_rkvm.commands.base import RkvmCommand


class RkvmLintEl2(RkvmCommand):
    """Check EL2 code in an ELF before it is copied to a physical page and run with the MMU off.

Usage: rkvm lint-el2 [FILE] [--symbol START[:END]] [--json]
FILE is a relocatable object (.o), a kernel module (.ko) or a linked ELF; without it, the EL2 ELF
last loaded with `rkvm stub --elf`. --symbol limits the check to the copied range: START to END (a
symbol, or +LENGTH), else START's size, else the end of its section. A module without --symbol:
its 2 KiB-aligned code sections. Reports absolute addresses (.quad label, ldr =label, movz/movk,
R_AARCH64_ABS64/MOVW_UABS_* relocations), ADRP pairs and the alignment the copy must keep, branches
and calls that leave the copy, the vector table (2 KiB alignment, 16 slots of 0x80, a slot running
into the next, empty slots), the stack used before SP_EL2 is set, writes to VBAR_EL2, HCR_EL2,
SCTLR_EL2 or VTTBR_EL2 relied on before an ISB, an ERET whose ELR_EL2/SPSR_EL2 were not set, EL1
registers used at EL2. The same as `rkvm lint-el2` in a shell (exit 0 clean, 1 findings, 2 bad input).
Example:
  (gdb) rkvm lint-el2 stub/build/el2_stub_jt.o
  stub/build/el2_stub_jt.o: relocatable object
    code: section .text.rkvm_stub, .text.rkvm_stub +0x0..+0x1000 (0x1000 bytes); vector table at ...
  error: absolute-address at rkvm_stub_jump_table (.text.rkvm_stub+0xd20)
      .quad rkvm_stub_version  (R_AARCH64_ABS64)
      a data word holding the absolute address of rkvm_stub_version: ..."""

    name = "lint-el2"
    complete_with = gdb.COMPLETE_FILENAME

    def add_arguments(self, p):
        p.add_argument("file", nargs="?")
        p.add_argument("--symbol", metavar="START[:END]")

    def run(self, args):
        path = args.file
        if path is None:
            loaded = list(el2_symbols.loaded())
            if not loaded:
                raise RkvmError("no FILE given and no EL2 ELF loaded (rkvm stub --elf FILE loads one)")
            path = loaded[-1]
        return el2lint.lint(path, args.symbol).to_dict()

    def format(self, result, args):
        return el2lint.format_text(_report(result))


def _report(d: dict) -> el2lint.LintReport:
    from gdb_rkvm.model.el2lint.model import RangeReport
    return el2lint.LintReport(d["file"], d["kind"], d["relocations"], [RangeReport(**r) for r in d["ranges"]],
                              [el2lint.Finding(**f) for f in d["findings"]], [el2lint.Note(**n) for n in d["notes"]])

"""`rkvm lint-el2`: check EL2 code in an ELF before it is copied to a physical page and run with
the MMU off. Pure host-side analysis (pyelftools + capstone); no GDB, no QEMU.

    report = lint("stub/build/el2_stub.o")            # every code section
    report = lint("rkvm.ko", "rkvm_stub_jt_blob")     # a symbol range inside a module
    print(format_text(report)); sys.exit(exit_code(report))
"""

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.el2lint.checks import check_range
from gdb_rkvm.model.el2lint.elf import default_ranges, load, load_data, parse_symbol_spec
from gdb_rkvm.model.el2lint.format import exit_code, format_json, format_text
from gdb_rkvm.model.el2lint.model import CHECKS, Finding, LintReport, Note
from gdb_rkvm.model.el2lint.text import printable

__all__ = ["CHECKS", "Finding", "LintReport", "Note", "exit_code", "format_json", "format_text", "lint", "printable"]


def lint(path, symbol: str | None = None) -> LintReport:
    """Lint the EL2 code in `path` (the range START[:END] given by `symbol`, else the default ranges).
    Raises RkvmError with one line for bad input."""
    img = load(path)
    ranges = [parse_symbol_spec(img, symbol)] if symbol else default_ranges(img)
    load_data(img, ranges)
    report = LintReport(printable(str(path)), img.kind, img.has_relocations)
    for rng in ranges:
        try:
            rr, findings, notes = check_range(img, rng)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError, OverflowError) as e:
            # the file's tables contradict each other (a damaged ELF): one line, never a traceback
            raise RkvmError(f"{printable(str(path))}: cannot lint {rng.section_name}, the ELF looks damaged "
                            f"({type(e).__name__}: {printable(str(e))})") from None
        report.ranges.append(rr)
        report.findings.extend(findings)
        report.notes.extend(notes)
    return report

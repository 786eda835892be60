"""The lint report as text (for a terminal) and as JSON. Every string in a report is already
printable (names from the file are escaped when read)."""

import json
import textwrap

from gdb_rkvm.model.el2lint.model import LintReport

WIDTH = 100


def exit_code(report: LintReport) -> int:
    """0 clean, 1 with findings (notes do not count)."""
    return 1 if report.findings else 0


def format_json(report: LintReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [indent]


def format_text(report: LintReport) -> str:
    lines = []
    kind = {"object": "relocatable object", "module": "kernel module", "linked": "linked ELF"}[report.kind]
    relocs = "" if report.relocations or report.kind != "linked" else ", no relocations (link with -q to keep them)"
    lines.append(f"{report.file}: {kind}{relocs}")
    for r in report.ranges:
        tables = f"; vector table at {', '.join(r.vector_tables)}" if r.vector_tables else "; no vector table"
        lines.append(f"  code: {r.how}, {r.section} +{r.start:#x}..+{r.end:#x} ({r.end - r.start:#x} bytes){tables}")
    for f in report.findings:
        lines.append("")
        lines.append(f"{f.severity}: {f.check} at {f.location} ({f.section}+{f.offset:#x})")
        lines.append(f"    {f.what}")
        lines += _wrap(f.why, "    ")
    if report.notes:
        lines.append("")
        for n in report.notes:
            lines += _wrap(f"note: {n.text}", "  ")
    errors = sum(f.severity == "error" for f in report.findings)
    warnings = len(report.findings) - errors
    lines.append("")
    lines.append("clean: no findings" if report.clean else
                 f"{len(report.findings)} finding(s): {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)

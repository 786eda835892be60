"""report.json (docs/triage-report.md gives its schema) and report.md, written atomically."""

import json
from pathlib import Path

from gdb_rkvm.model import records
from gdb_rkvm.model.guest_text import md_code_block, md_inline_code, md_text
from gdb_rkvm.paths import write_atomic

SCHEMA_VERSION = 1


def build(status: str, reason: str, findings: list, snap, ctx: dict, run: dict) -> dict:
    """The report; `snap` is a model/snapshot.Snapshot (or its JSON, or None when there is none)."""
    snap = records.to_json(snap)
    return {"schema": SCHEMA_VERSION, "status": status, "reason": reason,
            "findings": [f.to_dict() for f in findings], "snapshot": snap, "partial": bool(snap is None or
                                                                                           snap.get("partial")),
            "stop": ctx.get("stop"), "run": run, "kernel_log": ctx.get("kernel_log", []),
            "kernel_log_source": ctx.get("kernel_log_source")}


def markdown(r: dict) -> str:
    """report.md. Everything that can carry guest (or command-line) text goes through guest_text:
    control characters escaped, Markdown neutralized, code fences longer than any backtick run."""
    lines = ["# rkvm triage report", ""]
    verdict = {"healthy": "no findings", "findings": f"{len(r['findings'])} finding(s)",
               "failed": "triage failed"}[r["status"]]
    reason = r["reason"]
    if reason.startswith(verdict):   # "3 finding(s): codes": the count is in the verdict already
        reason = reason[len(verdict):].lstrip(": ")
    lines += [f"**Result: {verdict}.** {md_text(reason)}".rstrip(), ""]
    run = r["run"]
    lines += [f"- profile {md_inline_code(str(run.get('profile')))}, "
              f"mode {md_inline_code(run.get('mode') or 'default')}, "
              f"kernel command line {md_inline_code(run.get('cmdline', ''))}",
              f"- stopped: {md_text(r.get('stop') or 'n/a')}" + (" (partial snapshot)" if r["partial"] else ""), ""]
    for f in r["findings"]:
        cpus = f" (CPU {', '.join(map(str, f['cpus']))})" if f["cpus"] else ""
        lines += [f"## {f['severity'].upper()} {md_inline_code(f['code'])}{cpus}", "", md_text(f["summary"]) + ".", ""]
        lines += [f"- {md_text(e)}" for e in f["evidence"]]
        lines += ["", md_text(f["explanation"]), ""]
    snap = r.get("snapshot")
    if snap:
        lines += ["## CPUs", "", "| CPU | EL | PC | VBAR_EL2 | points at | SP_EL2 |", "|---|---|---|---|---|---|"]
        for c in snap["cpus"]:
            s = c.get("summary", {})
            if not s:
                continue
            sym = f" {md_inline_code(s['pc_symbol'])}" if s.get("pc_symbol") else ""
            lines.append(f"| {c['cpu']} | {md_text(str(s['mode']))} | {s['pc']:#x}{sym} | {s['vbar_el2']:#x} | "
                         f"{md_text(str(s['vbar_el2_points_at']))} | {s['sp_el2']:#x} |")
        lines.append("")
        for c in snap["cpus"]:
            if c.get("backtrace"):
                lines += [f"Backtrace, CPU {c['cpu']}:", *md_code_block(c["backtrace"]), ""]
    if r["kernel_log"]:
        lines += [f"## Kernel log (last lines, from {md_text(str(r['kernel_log_source']))})",
                  *md_code_block(r["kernel_log"][-40:])]
    return "\n".join(lines) + "\n"


def write(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_atomic(out / "report.md", markdown(report))

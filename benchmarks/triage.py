"""Benchmark: `rkvm triage` wall time per scenario, before and after, alternating in rounds (before,
after, before, after ...), medians.

after:  this checkout (the session's RAM file: physical reads from it, exception log, PSCI watch).
before: --before-tree DIR, another checkout of gdb-rkvm run on this checkout's build (e.g. the commit
        before issue 14: `git archive COMMIT | tar -x -C DIR` plus a copy of stub/build); without it,
        this checkout with --no-ram-file (every physical read through the gdbstub).

Usage: build/venv/bin/python benchmarks/triage.py [--rounds N] [--before-tree DIR]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm.paths import REPO  # noqa: E402

SCENARIOS = {
    "good": ["--mode", "good"],
    "vmalloc": ["--mode", "vmalloc"],
    "one-cpu": ["--mode", "one-cpu"],
    "nostack": ["--mode", "nostack"],
    "stub fault": ["--run", "echo fault > /sys/kernel/debug/rkvm/hvc"],
    "sysrq panic": ["--run", "echo c > /proc/sysrq-trigger"],
}


def run(args: list[str], tree: Path, extra: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as out:
        start = time.monotonic()
        env = {**os.environ, "RKVM_BUILD": str(REPO / "build")}
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", out, *args, *extra],
                             cwd=tree, capture_output=True, text=True, timeout=600, env=env)
        wall = time.monotonic() - start
        try:
            codes = sorted({f["code"] for f in json.loads((Path(out) / "report.json").read_text())["findings"]})
        except (OSError, ValueError, KeyError):
            codes = [f"failed: {res.stderr.strip()[-120:]}"]
    return wall, ",".join(codes) or "healthy"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before-tree", type=Path, help="the checkout to measure as 'before'")
    args = ap.parse_args()
    before_tree, before_extra = (args.before_tree, []) if args.before_tree else (REPO, ["--no-ram-file"])
    what = f"{before_tree}" if args.before_tree else "this checkout with --no-ram-file"
    print(f"rkvm triage wall time, medians of {args.rounds} alternating runs (before: {what}; after: {REPO})")
    print(f"{'scenario':<12} {'before':>8} {'after':>8} {'after/before':>13}  findings")
    for name, scenario in SCENARIOS.items():
        before, after, found = [], [], set()
        for _ in range(args.rounds):
            for tree, extra, into in ((before_tree, before_extra, before), (REPO, [], after)):
                wall, codes = run(scenario, tree, extra)
                into.append(wall)
                found.add(codes)
        b, a = statistics.median(before), statistics.median(after)
        print(f"{name:<12} {b:7.1f}s {a:7.1f}s {a / b:13.2f}  {' | '.join(sorted(found))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

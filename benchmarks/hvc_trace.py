"""Benchmark: HVC traps logged per second by `rkvm hvc trace` against a plain GDB breakpoint with
`commands / silent / continue` on the same vector slot, on the same burst of pings, in one run.
Usage: python3 benchmarks/hvc_trace.py   (RKVM_BENCH_SECONDS=5 per measurement window)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm import session  # noqa: E402
from gdb_rkvm.paths import REPO  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RKVM_SESSION_DIR"] = tmp
        out = Path(tmp) / "result.json"
        session.start("lab", directory=Path(tmp))
        try:
            subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py"),
                            "-ex", "rkvm run-to installed-all", "-x", str(REPO / "benchmarks/hvc_trace_gdb.py")],
                           env={**os.environ, "RKVM_BENCH_OUT": str(out)}, check=True, timeout=600,
                           capture_output=True)
            r = json.loads(out.read_text())
        finally:
            session.stop(Path(tmp))
    print(f"plain GDB breakpoint (commands/silent/continue): {r['plain_hits']:6d} traps in {r['plain_seconds']:.1f} s"
          f" = {r['plain_rate']:7.1f}/s  (entries only)")
    print(f"rkvm hvc trace (entry + return, x0 both ways):   {r['rkvm_traps']:6d} traps in {r['rkvm_seconds']:.1f} s"
          f" = {r['rkvm_rate']:7.1f}/s")
    print(f"rkvm hvc trace --entries-only:                   {r['entries_traps']:6d} traps in "
          f"{r['entries_seconds']:.1f} s = {r['entries_rate']:7.1f}/s")
    print(f"ratio rkvm / plain, same work (entries only): {r['entries_ratio']:.2f}  (aim: >= 0.8)")
    print(f"ratio rkvm / plain, with returns (2 stops):   {r['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

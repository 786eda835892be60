"""Benchmark: a full `rkvm vmmap` of TTBR1_EL1 against per-descriptor reads and the raw table reads.

Boots the lab, stops after rkvm.ko's install, and runs benchmarks/pagewalk_gdb.py inside GDB so all
three are measured in the same stop of the same guest. Prints ratios (no absolute thresholds).
Usage: python3 benchmarks/pagewalk.py
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
                            "-ex", "rkvm run-to installed-all", "-x", str(REPO / "benchmarks/pagewalk_gdb.py")],
                           env={**os.environ, "RKVM_BENCH_OUT": str(out)}, check=True, timeout=600,
                           capture_output=True)
            r = json.loads(out.read_text())
        finally:
            session.stop(Path(tmp))
    print(f"TTBR1_EL1: {r['tables']} tables ({r['bytes']} bytes), {r['mappings']} coalesced ranges")
    print(f"rkvm vmmap (whole-table reads):  {r['rkvm_seconds'] * 1000:8.1f} ms  {r['rkvm_reads']:6d} reads")
    print(f"raw read of the same tables:      {r['raw_seconds'] * 1000:8.1f} ms  {r['tables']:6d} reads")
    print(f"naive (one read per descriptor):  {r['naive_seconds'] * 1000:8.1f} ms  {r['naive_reads']:6d} reads")
    print(f"ratio rkvm / raw limit:   {r['rkvm_over_raw']:.2f}  (aim: <= 1.5)")
    print(f"ratio naive / rkvm:       {r['naive_over_rkvm']:.1f}  (aim: >= 10)")
    print(f"GDB {r['packet_size']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a full `rkvm vmmap` of TTBR1_EL1 against per-descriptor reads and the raw table reads.

Boots the lab, stops after rkvm.ko's install, and runs benchmarks/pagewalk_gdb.py inside GDB so all
three are measured in the same stop of the same guest. Prints ratios (no absolute thresholds).
Usage: python3 benchmarks/pagewalk.py
"""

import sys

from common import run_in_lab


def main() -> int:
    r = run_in_lab("pagewalk_gdb.py")
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

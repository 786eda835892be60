"""Benchmark: a full `rkvm vmmap` of TTBR1_EL1 (physical reads from the session's RAM file) against the
raw gdbstub read of the same table pages (the old limit), the raw read of them from the RAM file (the new
limit), the same walker through the gdbstub, and per-descriptor gdbstub reads.

Boots the lab, stops after rkvm.ko's install, and runs benchmarks/pagewalk_gdb.py inside GDB so all are
measured in the same stop of the same guest, alternating in RKVM_BENCH_ROUNDS rounds (default 9);
medians. Prints ratios (no absolute thresholds).
Usage: build/venv/bin/python benchmarks/pagewalk.py
"""

import sys

from common import run_in_lab


def main() -> int:
    r = run_in_lab("pagewalk_gdb.py")
    print(f"TTBR1_EL1: {r['tables']} tables ({r['bytes']} bytes), {r['mappings']} coalesced ranges; "
          f"medians of {r['rounds']} alternating rounds; reader: {r['reader']}")
    print(f"rkvm vmmap walk (RAM file):          {r['rkvm_seconds'] * 1000:8.2f} ms  {r['rkvm_reads']:6d} reads")
    print(f"raw gdbstub read of the same tables: {r['raw_seconds'] * 1000:8.2f} ms  (the old limit)")
    print(f"raw RAM-file read of the same tables:{r['mmap_seconds'] * 1000:8.2f} ms  (the new limit)")
    print(f"the same walk through the gdbstub:   {r['rkvm_stub_seconds'] * 1000:8.2f} ms")
    print(f"naive (one gdbstub read/descriptor): {r['naive_seconds'] * 1000:8.1f} ms  {r['naive_reads']:6d} reads")
    print(f"ratio raw gdbstub / rkvm vmmap:  {r['raw_over_rkvm']:.1f}  (aim: >= 3)")
    print(f"ratio rkvm vmmap / raw RAM file: {r['rkvm_over_mmap']:.1f}")
    print(f"ratio gdbstub walk / raw gdbstub: {r['rkvm_stub_over_raw']:.2f}  (was the aim <= 1.5)")
    print(f"ratio naive / rkvm:       {r['naive_over_rkvm']:.0f}")
    print(f"rkvm snapshot (what triage records): {r['snapshot_seconds'] * 1000:.0f} ms with the RAM file, "
          f"{r['snapshot_stub_seconds'] * 1000:.0f} ms through the gdbstub")
    print(f"GDB {r['packet_size']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

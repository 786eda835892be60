"""Benchmark: HVC traps logged per second by `rkvm hvc trace` against a plain GDB breakpoint with
`commands / silent / continue` on the same vector slot, on the same burst of pings, in one run.
Usage: python3 benchmarks/hvc_trace.py   (RKVM_BENCH_SECONDS=5 per measurement window)
"""

import sys

from common import run_in_lab


def main() -> int:
    r = run_in_lab("hvc_trace_gdb.py")
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

"""Benchmark: HVC traps logged per second by `rkvm hvc trace` (from QEMU's exception log, and with
--args from breakpoints) against a plain GDB breakpoint with `commands / silent / continue` on the same
vector slot, on the same endless burst of pings, in alternating windows; medians.
Usage: build/venv/bin/python benchmarks/hvc_trace.py   (RKVM_BENCH_SECONDS=3 per window, RKVM_BENCH_ROUNDS=3)
"""

import sys

from common import run_in_lab


def main() -> int:
    r = run_in_lab("hvc_trace_gdb.py")
    m, tm = r["median"], r["transitions_median"]
    print(f"medians of {r['rounds']} alternating windows of {r['window']:g} s, HVC traps (entries) per second:")
    print(f"plain GDB breakpoint (commands/silent/continue): {m['plain']:9.1f}/s  (entries only)")
    print(f"rkvm hvc trace (exception log, entry + return):  {m['log']:9.1f}/s  "
          f"({tm['log']:.0f} transitions/s; {r['log_wall_rate']:.0f}/s over the whole command)")
    print(f"rkvm hvc trace --args (breakpoints, with x0):     {m['args']:9.1f}/s")
    print(f"rkvm hvc trace --args --entries-only:             {m['entries']:9.1f}/s")
    print(f"ratio log / plain, traps:        {r['log_over_plain']:.0f}  (aim: >= 20)")
    print(f"ratio log / plain, transitions:  {r['log_transitions_over_plain']:.0f}")
    print(f"ratio --args --entries-only / plain (same work): {r['entries_over_plain']:.2f}  (aim: >= 0.8)")
    print(f"ratio --args / plain (2 stops per trap):         {r['args_over_plain']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `rkvm vmmap`'s traversal on the hostile table set of tests/hostile/tables.py.

Four guest pages that describe 512^4 pages (every upper entry points at one table, AttrIndx
alternates at the last level). Runs what `rkvm vmmap` does with the tables in hand: the traversal
(pagetable.mappings), the JSON conversion of every range and the text output. Prints the wall time,
the peak resident memory and how many ranges came out. No GDB, no QEMU.
Usage: python3 benchmarks/vmmap_hostile.py [--distinct]   (--distinct: 4096 different tables, no sharing)
"""

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gdb_rkvm.arch import pagetable as pt  # noqa: E402
from tests.hostile.tables import GEO, L0, MAIR, distinct_memory, hostile_memory  # noqa: E402


def main() -> int:
    distinct = "--distinct" in sys.argv  # 4096 different level 3 tables instead of one shared
    mem = distinct_memory() if distinct else hostile_memory()
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader = pt.TableReader(mem.read, GEO.granule)
    t0 = time.monotonic()
    shared: list = []
    try:
        result = pt.mappings(L0, GEO, reader, va_base=0, mair=MAIR, shared=shared)
    except TypeError:  # a version without shared-table reporting (to measure the old code)
        result = pt.mappings(L0, GEO, reader, va_base=0, mair=MAIR)
    maps, problems = result[0], result[1]
    rows = [{**m.to_dict(), "perms": pt.permissions(m.attrs)} for m in maps]
    text = "\n".join(f"{r['va']:#018x}  {r['end']:#018x}  {r['size']:<8} {r['pa']:<#12x} {r['perms']}" for r in rows)
    seconds = time.monotonic() - t0
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024
    kind = "4096 distinct level 3 tables" if distinct else "four pages, shared"
    print(f"hostile tables ({kind}): {len(maps)} ranges, {len(problems)} problem line(s), "
          f"{len(shared)} shared-table range(s), {len(text)} bytes of output")
    for p in problems[:6]:
        print(f"  problem: {p}")
    print(f"time {seconds * 1000:.1f} ms, peak memory +{peak_mb:.1f} MB (RSS over the interpreter's own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The issue's vmmap attack: four guest pages that describe 512^4 pages, and variants."""

import time
import tracemalloc

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch.pagetable import Budget, TableReader

from .tables import GEO, L0, L1, L2, L3, MAIR, OUT, distinct_memory, hostile_memory


def traverse(mem, **kwargs):
    shared = []
    budget = kwargs.pop("budget", None) or Budget()
    maps, problems = pt.mappings(L0, GEO, TableReader(mem.read, GEO.granule), mair=MAIR, budget=budget,
                                 shared=shared, **kwargs)
    return maps, problems, shared, budget


def test_shared_tables_are_walked_once_and_reported():
    tracemalloc.start()
    t0 = time.monotonic()
    mem = hostile_memory()
    maps, problems, shared, budget = traverse(mem)
    seconds = time.monotonic() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # before: 10.2 million ranges, 13 GB, 90 s (benchmarks/vmmap_hostile.py on the old code)
    assert seconds < 2 and peak < 20 << 20
    assert mem.reads == 4 and budget.tables == 4 and budget.truncated is None and problems == []
    assert len(maps) == 512 and [m.attrs["AttrIndx"] for m in maps[:4]] == [0, 1, 0, 1]
    assert maps[0].va == 0 and maps[0].pa == OUT and maps[-1].va == 511 * 4096
    # the other 511 entries of each upper table: one merged range per level, pointing at the shared table
    assert [(s.level, s.table, s.va, s.size, s.first_va) for s in shared] == [
        (3, L3, 1 << 21, 511 << 21, 0), (2, L2, 1 << 30, 511 << 30, 0), (1, L1, 1 << 39, 511 << 39, 0)]


def test_a_shared_range_maps_what_its_first_va_maps():
    mem = hostile_memory()
    _, _, shared, _ = traverse(mem)
    reader = TableReader(mem.read, GEO.granule)
    for s in shared:
        for va in (s.va, s.va + s.size - 4096, s.va + 0x1234_5000 % s.size):
            w = pt.walk(va, L0, GEO, reader)
            same = pt.walk(s.first_va + (va - s.va) % (1 << GEO.level_shift(s.level - 1)), L0, GEO, reader)
            assert w.ok and w.pa == same.pa


def test_distinct_tables_stop_at_the_range_limit_with_the_numbers():
    maps, problems, shared, budget = traverse(distinct_memory(4096))
    assert len(maps) == budget.max_ranges == 65536 and shared == []
    assert budget.truncated == problems[-1]
    assert problems[-1].startswith("truncated: stopped after 65536 ranges (the range limit); walked ")
    assert "tables, " in problems[-1] and " descriptors in " in problems[-1]


def test_descriptor_and_table_limits():
    _, problems, _, budget = traverse(distinct_memory(64), budget=Budget(max_leaves=10_000))
    assert budget.leaves <= 10_000 and "the descriptor limit" in problems[-1]
    _, problems, _, budget = traverse(distinct_memory(64), budget=Budget(max_tables=10))
    assert budget.tables == 10 and "stopped after 10 tables" in problems[-1]


def test_time_limit():
    ticks = iter(range(0, 10**6, 5))        # every look at the clock: 5 s later
    budget = Budget(max_seconds=20, clock=lambda: next(ticks))
    maps, problems, _, budget = traverse(distinct_memory(64), budget=budget)
    assert "stopped after 20 s (the time limit)" in problems[-1] and budget.tables < 10


def test_loops_are_problems_not_shared():
    mem = hostile_memory()
    mem.put(L2, [L0 | 3] + [L3 | 3] * 511)      # level 2 entry 0 points back at the root
    _, problems, shared, _ = traverse(mem)
    assert any("refers back to itself" in p for p in problems)
    assert all(s.table != L0 for s in shared)


def test_budget_is_in_the_json():
    _, _, _, budget = traverse(distinct_memory(8), budget=Budget(max_tables=3))
    d = budget.to_dict()
    assert d["truncated"].startswith("truncated:") and d["tables"] == 3
    assert d["limits"] == {"tables": 3, "leaves": 2_000_000, "ranges": 65536, "seconds": 20.0}

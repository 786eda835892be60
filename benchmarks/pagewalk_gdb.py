# Runs inside GDB (sourced after rkvm.py, target stopped after boot). Writes JSON to $RKVM_BENCH_OUT.
# Ways to read the TTBR1_EL1 tables of one full vmmap, in the same stop, alternating in rounds (medians):
#   rkvm:      the walker as `rkvm vmmap` runs it (physical reads from the session's RAM file)
#   rkvm_stub: the same walker reading through the gdbstub (the reader before the RAM file)
#   raw:       only reading the table pages the walk touched through the gdbstub (the old limit)
#   mmap:      only reading those pages from the RAM file (the new limit)
#   naive:     the traversal reading one 8-byte descriptor per gdbstub read (once)
import json
import os
import statistics
import time

import gdb

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import physmem
from gdb_rkvm.live.gdb_state import STATE

ROUNDS = int(os.environ.get("RKVM_BENCH_ROUNDS", "9"))


class PerDescriptorReader(pt.TableReader):
    """What a walker does without table caching: one gdbstub read per descriptor."""

    def table(self, table, entries):
        out = []
        for index in range(entries):
            self.reads += 1
            out.append(int.from_bytes(self.read_phys(table + 8 * index, 8), "little"))
        return tuple(out)


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        STATE.stop_cache.clear()
        gdb.execute("maint flush dcache", to_string=True)
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


tcr, mair, ttbr = (t.read_register(n) for n in ("TCR_EL1", "MAIR_EL1", "TTBR1_EL1"))
geo = pt.stage1_geometry(tcr, upper=True)
va_base = (1 << 64) - (1 << geo.ia_bits)
inferior = gdb.selected_inferior()


def raw_read(addr, size):
    return bytes(inferior.read_memory(addr, size))


def rkvm_way():
    with t.physical_memory():
        reader = pt.TableReader(raw_read, geo.granule)
        maps, _ = pt.mappings(ttbr, geo, reader, va_base=va_base, mair=mair)
    return reader, maps


def naive_way():
    with t.physical_memory():
        reader = PerDescriptorReader(raw_read, geo.granule)
        maps, _ = pt.mappings(ttbr, geo, reader, va_base=va_base, mair=mair)
    return reader, maps


def rkvm_stub_way():
    ram = STATE.phys
    STATE.phys = None            # the same product reader, gdbstub only
    try:
        return rkvm_way_product()
    finally:
        STATE.phys = ram


def rkvm_way_product():
    with t.physical_reader() as read:
        reader = pt.TableReader(read, geo.granule)
        maps, _ = pt.mappings(ttbr, geo, reader, va_base=va_base, mair=mair)
    return reader, maps


ram = physmem.backend()
assert ram is not None, f"no RAM file: {physmem.describe()}"
_, (reader, maps) = timed(rkvm_way_product, repeat=1)
tables = list(reader.tables)


def raw_way():
    with t.physical_memory():
        for addr, size in tables:
            raw_read(addr, size)
    return len(tables)


def mmap_way():
    for addr, size in tables:
        ram.read(addr, size)
    return len(tables)


def snapshot_way():
    return gdb.execute("rkvm snapshot --json", to_string=True)


def snapshot_stub_way():
    ram = STATE.phys
    STATE.phys = None
    try:
        return snapshot_way()
    finally:
        STATE.phys = ram


ways = {"rkvm": rkvm_way_product, "rkvm_stub": rkvm_stub_way, "raw": raw_way, "mmap": mmap_way,
        "snapshot": snapshot_way, "snapshot_stub": snapshot_stub_way}
samples = {k: [] for k in ways}
for _ in range(ROUNDS):              # A B C D A B C D ...: noise hits every way alike
    for name, fn in ways.items():
        dt, _ = timed(fn, repeat=1)
        samples[name].append(dt)
med = {k: statistics.median(v) for k, v in samples.items()}
t_naive, (naive_reader, naive_maps) = timed(naive_way, repeat=1)
assert [(m.va, m.size, m.pa) for m in naive_maps] == [(m.va, m.size, m.pa) for m in maps]
_, (_, stub_maps) = timed(rkvm_stub_way, repeat=1)
assert [(m.va, m.size, m.pa) for m in stub_maps] == [(m.va, m.size, m.pa) for m in maps]
packet = gdb.execute("show remote memory-read-packet-size", to_string=True).strip()
result = {
    "tables": len(tables), "mappings": len(maps), "bytes": sum(s for _, s in tables), "rounds": ROUNDS,
    "rkvm_seconds": med["rkvm"], "rkvm_stub_seconds": med["rkvm_stub"], "raw_seconds": med["raw"],
    "mmap_seconds": med["mmap"], "naive_seconds": t_naive,
    "rkvm_reads": reader.reads, "naive_reads": naive_reader.reads,
    "raw_over_rkvm": med["raw"] / med["rkvm"], "rkvm_over_mmap": med["rkvm"] / med["mmap"],
    "rkvm_stub_over_raw": med["rkvm_stub"] / med["raw"], "naive_over_rkvm": t_naive / med["rkvm"],
    "packet_size": packet, "reader": physmem.describe(),
    "snapshot_seconds": med["snapshot"], "snapshot_stub_seconds": med["snapshot_stub"],
}
with open(os.environ["RKVM_BENCH_OUT"], "w") as f:
    json.dump(result, f)

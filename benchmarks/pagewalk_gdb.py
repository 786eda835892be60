# Runs inside GDB (sourced after rkvm.py, target stopped after boot). Writes JSON to $RKVM_BENCH_OUT.
# Three ways to read the TTBR1_EL1 tables of one full vmmap, in the same stop:
#   rkvm:   the walker with whole-table reads (what `rkvm vmmap` does)
#   naive:  the same traversal reading one 8-byte descriptor per gdbstub read
#   raw:    only reading the table pages the walk touched, nothing else (the limit)
import json
import os
import time

import gdb

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.target import gdb_target as t
from gdb_rkvm.target.gdb_state import STATE


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


t_rkvm, (reader, maps) = timed(rkvm_way)
tables = list(reader.tables)


def raw_way():
    with t.physical_memory():
        for addr, size in tables:
            raw_read(addr, size)
    return len(tables)


t_raw, _ = timed(raw_way)
t_naive, (naive_reader, naive_maps) = timed(naive_way, repeat=1)
assert [(m.va, m.size, m.pa) for m in naive_maps] == [(m.va, m.size, m.pa) for m in maps]
packet = gdb.execute("show remote memory-read-packet-size", to_string=True).strip()
result = {
    "tables": len(tables), "mappings": len(maps), "bytes": sum(s for _, s in tables),
    "rkvm_seconds": t_rkvm, "raw_seconds": t_raw, "naive_seconds": t_naive,
    "rkvm_reads": reader.reads, "naive_reads": naive_reader.reads,
    "rkvm_over_raw": t_rkvm / t_raw, "naive_over_rkvm": t_naive / t_rkvm, "packet_size": packet,
}
with open(os.environ["RKVM_BENCH_OUT"], "w") as f:
    json.dump(result, f)

from dataclasses import dataclass

from gdb_rkvm.arch.guest_map import memattr_name, stage1_perms, stage2_perms
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.arch.pagetable import permissions
from gdb_rkvm.model.translation import AddressMap, GuestMap
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import guest_map, guest_translation
from gdb_rkvm.live.address_map import el1_map
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int
from gdb_rkvm.commands.format import human_size


@dataclass(frozen=True)
class VmmapResult:
    """`rkvm vmmap`'s answer: the address map of one TTBR, on which CPU."""

    map: AddressMap
    cpu: int | None

    def to_json(self) -> dict:
        out = self.map.to_json()
        out["mappings"] = [{**x.to_dict(), "perms": permissions(x.attrs)} for x in self.map.mappings]
        return {**{k: v for k, v in out.items() if k != "mappings"}, "cpu": self.cpu, "mappings": out["mappings"]}


@only_when(STOPPED)
class RkvmVmmap(RkvmCommand):
    """Every mapped range of the EL1&0 regime, coalesced, with permissions and memory type.

Usage: rkvm vmmap [--ttbr0|--ttbr1] [--cpu N] [--json]
       rkvm vmmap --stage 2 [--vttbr X] [--vtcr X] [--cpu N] [--json] [--explain]
       rkvm vmmap --guest [--ttbr0|--ttbr1] [--ttbr X] [--tcr X] [--vttbr X] [--vtcr X] [--cpu N] [--json]
Default --ttbr1 (the kernel's half; the guest's default is --ttbr0). --stage 2 lists the IPA ranges
stage 2 maps (live in the guest, else the vCPU that ran last on the CPU) with S2AP/XN and MemAttr;
--guest lists the guest's stage 1 ranges, each cut where stage 2 maps it differently, with its IPA
and PA ("-" where stage 2 maps nothing: an access there exits to the hypervisor).
Permissions are EL1 then EL0 (rwx), from AP, PXN and UXN.
Each table is walked once: entries that point at a table already walked are listed as "shared"
(they map what the first VA maps). The tables are guest memory, so the walk is bounded (20000
tables, 2M descriptors, 65536 ranges, 20 s): past a bound it stops and says "truncated" with the
numbers (JSON: truncated, traversal, shared_tables).
Example:
  (gdb) rkvm vmmap
  VA start            VA end              size     PA           EL1 EL0  type
  0xffff000000000000  0xffff000000200000  2 MiB    0x40000000   rw- ---  Normal Write-Back ...
  (gdb) rkvm vmmap --stage 2
  IPA start           IPA end             size     PA           S2AP XN   EL1 EL0  MemAttr
  0x0000000080000000  0x0000000080010000  64 KiB   0x4a3c0000   RW   0b00 rwx rwx  Normal Write-Back"""

    name = "vmmap"
    explains = True

    def add_arguments(self, p):
        g = p.add_mutually_exclusive_group()
        g.add_argument("--ttbr0", action="store_const", dest="half", const="ttbr0")
        g.add_argument("--ttbr1", action="store_const", dest="half", const="ttbr1")
        self.add_cpu_argument(p)
        p.add_argument("--stage", type=int, choices=(1, 2), default=1)
        p.add_argument("--guest", action="store_true", help="the guest's stage 1 with IPAs and PAs")
        for name in ("ttbr", "tcr", "vttbr", "vtcr"):
            p.add_argument(f"--{name}", default=None, help=f"map with this {name.upper()} value")

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        given = guest_translation.Given(*(None if getattr(args, n) is None else parse_int(getattr(args, n), f"--{n}")
                                          for n in ("ttbr", "tcr", "vttbr", "vtcr")))
        if args.guest:
            return guest_map.guest_map(cpu, given, args.half or "ttbr0")
        if given != guest_translation.NOTHING_GIVEN and args.stage != 2:
            raise RkvmError("--ttbr/--tcr/--vttbr/--vtcr go with --guest (or --vttbr/--vtcr with --stage 2)")
        if args.stage == 2:
            if given.ttbr is not None or given.tcr is not None:
                raise RkvmError("--ttbr and --tcr name a guest's stage 1: use them with --guest")
            return guest_map.stage2_map(cpu, given)
        return VmmapResult(el1_map(args.half or "ttbr1", cpu), cpu)

    def format(self, r, args):
        if isinstance(r, GuestMap):
            return format_guest_map(r, args.explain) if r.stage1 is not None else format_stage2_map(r, args.explain)
        m = r.map
        lines = [f"{'VA start':<18}  {'VA end':<18}  {'size':<8} {'PA':<12} EL1 EL0  type"]
        for x in m.mappings:
            lines.append(f"{x.va:#018x}  {x.end():#018x}  {human_size(x.size):<8} {x.pa:<#12x} "
                         f"{permissions(x.attrs)}  {x.attrs.get('MemType', '')}")
        for s in m.shared_tables:
            lines.append(f"{s.va:#018x}  {s.va + s.size:#018x}  {human_size(s.size):<8} shared: the level {s.level} "
                         f"table at PA {s.table:#x}, already listed at VA {s.first_va:#x}")
        if m.shared_total > len(m.shared_tables):
            lines.append(f"... and {m.shared_total - len(m.shared_tables)} more shared-table ranges")
        shared = f", {m.shared_total} shared-table ranges (not walked again)" if m.shared_total else ""
        lines.append(f"{len(m.mappings)} ranges from {m.tables_total} tables{shared}")
        lines += [f"problem: {p}" for p in m.problems]
        return "\n".join(lines)


@only_when(STOPPED)
class RkvmP2v(RkvmCommand):
    """The virtual addresses that map a physical address (searches TTBR1_EL1 and TTBR0_EL1).

Usage: rkvm p2v PA [--cpu N] [--json]
Example:
  (gdb) rkvm p2v 0x40a60000
  0xffff000000a60000  linear map  rw- ---  Normal Write-Back ..."""

    name = "p2v"

    def add_arguments(self, p):
        p.add_argument("pa")
        self.add_cpu_argument(p)

    def run(self, args):
        from gdb_rkvm.live.translation import address_of
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        pa = address_of(args.pa)
        hits = []
        for half in ("ttbr1", "ttbr0"):
            try:
                m = el1_map(half, cpu)
            except Exception:  # noqa: BLE001  a disabled half has nothing to find
                continue
            for x in m.mappings:
                if x.pa <= pa < x.pa + x.size:
                    va = x.va + (pa - x.pa)
                    hits.append({"va": va, "half": half, "symbol": t.symbol_at(va), "perms": permissions(x.attrs),
                                 "memtype": x.attrs.get("MemType", "")})
        return {"pa": pa, "vas": hits}

    def format(self, r, args):
        if not r["vas"]:
            return f"PA {r['pa']:#x} is not mapped in this CPU's EL1&0 tables"
        return "\n".join(f"{h['va']:#018x}  {h['half']}  {h['perms']}  {h['memtype']}"
                         + (f"  <{h['symbol']}>" if h["symbol"] else "") for h in r["vas"])


# ---- the guest world (issue 16) ----

EXPLAIN_MAP = (
    "Stage 2 maps IPAs (what the guest takes for physical addresses) to PAs; a range it leaves out is where "
    "a guest access exits to the hypervisor (emulated MMIO, or a page not given yet). S2AP is read/write "
    "permission for the guest as a whole (EL1 and EL0 alike), XN limits execution; the guest's own stage 1 "
    "can only narrow what stage 2 allows.")


def _tail(m: AddressMap) -> list[str]:
    shared = f", {m.shared_total} shared-table ranges (not walked again)" if m.shared_total else ""
    return [f"{len(m.mappings)} ranges from {m.tables_total} tables{shared}"] + [f"problem: {p}" for p in m.problems]


def format_stage2_map(r: GuestMap, explain: bool = False) -> str:
    m = r.stage2
    lines = [f"stage 2 of VMID {r.regime.stage2_regs().vmid}: VTTBR_EL2 {m.ttbr:#x}, {m.ia_bits}-bit IPA, "
             f"{m.granule // 1024}K granule", f"  registers: {r.regime.source}"]
    if explain:
        lines.append("  " + EXPLAIN_MAP)
    lines.append(f"{'IPA start':<18}  {'IPA end':<18}  {'size':<8} {'PA':<12} S2AP XN   EL1 EL0  MemAttr")
    for x in m.mappings:
        a = x.attrs
        lines.append(f"{x.va:#018x}  {x.end():#018x}  {human_size(x.size):<8} {x.pa:<#12x} {a.get('S2AP', ''):<4} "
                     f"{a.get('XN', 0):#04b} {stage2_perms(a)}  {memattr_name(a.get('MemAttr', 0))}")
    return "\n".join(lines + _tail(m))


def format_guest_map(r: GuestMap, explain: bool = False) -> str:
    s1 = r.stage1
    lines = [f"guest stage 1 via {r.regime.table_register} {s1.ttbr:#x} ({s1.ia_bits}-bit, {s1.granule // 1024}K "
             f"granule; its tables read at IPAs through stage 2), VMID {r.regime.stage2.stage2_regs().vmid}",
             f"  stage 1 registers: {r.regime.source}", f"  stage 2 registers: {r.regime.stage2.source}"]
    if explain:
        lines.append("  " + EXPLAIN_MAP)
    lines.append(f"{'VA start':<18}  {'VA end':<18}  {'size':<8} {'IPA':<12} {'PA':<12} stage1   both     type")
    for p in r.pieces:
        pa = f"{p.pa:#x}" if p.pa is not None else "-"
        both = str(p.perms) if p.perms else "stage 2 unmapped (exits: MMIO?)"
        lines.append(f"{p.va:#018x}  {p.va + p.size:#018x}  {human_size(p.size):<8} {p.ipa:<#12x} {pa:<12} "
                     f"{stage1_perms(p.s1_attrs)}  {both}  {p.s1_attrs.get('MemType', '')}".rstrip())
    if r.pieces_truncated:
        lines.append(f"truncated: stopped after {len(r.pieces)} pieces")
    lines += [f"stage 1: {t}" for t in _tail(s1)] + [f"stage 2: {t}" for t in _tail(r.stage2)]
    return "\n".join(lines)

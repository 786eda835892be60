from dataclasses import dataclass

from gdb_rkvm.arch.guest_map import memattr_name, stage2_perms
from gdb_rkvm.arch.two_stage import GuestWalk, LevelStep, Stage2Walk
from gdb_rkvm.arch.pagetable import Step
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.translation import GuestTranslation, Regime, Translation
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import guest_translation, translation
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int
from gdb_rkvm.commands.format import human_size


@only_when(STOPPED)
class RkvmWalk(RkvmCommand):
    """Walk the translation tables for a VA, level by level, as the MMU would.

Usage: rkvm walk VA [--cpu N] [--regime el1|el2] [--json] [--explain]
       rkvm walk --stage 2 IPA [--vttbr X] [--vtcr X] [--cpu N] [--json] [--explain]
       rkvm walk --guest VA [--ttbr X] [--tcr X] [--vttbr X] [--vtcr X] [--cpu N] [--json] [--explain]
VA is a number or a symbol. The EL1&0 regime picks TTBR0_EL1 or TTBR1_EL1 by VA[55]; granule and
sizes come from TCR_EL1 at run time. Tables are read as physical memory.
--stage 2 walks the guest world's stage 2 (IPA -> PA): the live VTTBR_EL2/VTCR_EL2 when the CPU is in
the guest (HCR_EL2.VM = 1), else those of the vCPU that ran last on it. --guest walks a guest VA
through both stages: the guest's stage 1 (live EL1 registers in the guest, else the vCPU's saved EL1
context), each stage 1 table fetch (an IPA) through stage 2, then the IPA through stage 2.
--ttbr/--tcr/--vttbr/--vtcr walk tables you name instead (a saved vCPU's, say).
Example:
  (gdb) rkvm walk rkvm_debug
  VA 0xffff800078542000 via TTBR1_EL1 (EL1&0, 4K granule, 48-bit, start level 0)
    L0  table 0x41a3a000[256]  0x0000000041fff003  table -> 0x41fff000
    ...
  PA 0x4174d000
  (gdb) rkvm walk --guest 0x49000000
  guest VA 0x49000000 (VMID 1): stage 1 via TTBR0_EL1 0x80001000 ...
  no PA: stage 2 translation fault at level 2: ... IPA 0x9000000 ..."""

    name = "walk"
    explains = True

    def add_arguments(self, p):
        p.add_argument("va")
        self.add_cpu_argument(p)
        p.add_argument("--regime", choices=("el1", "el2"), default="el1")
        p.add_argument("--stage", type=int, choices=(1, 2), default=1)
        p.add_argument("--guest", action="store_true", help="a guest VA through both stages")
        for name in ("ttbr", "tcr", "vttbr", "vtcr"):
            p.add_argument(f"--{name}", default=None, help=f"walk with this {name.upper()} value")

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        va = translation.address_of(args.va)
        given = guest_translation.Given(*(None if getattr(args, n) is None else parse_int(getattr(args, n), f"--{n}")
                                          for n in ("ttbr", "tcr", "vttbr", "vtcr")))
        if args.guest:
            return guest_translation.walk_guest(va, cpu, given)
        if given.ttbr is not None or given.tcr is not None:
            raise RkvmError("--ttbr and --tcr name a guest's stage 1: use them with --guest")
        if args.stage == 2:
            return guest_translation.walk_stage2(va, cpu, given)
        if given.vttbr is not None or given.vtcr is not None:
            raise RkvmError("--vttbr and --vtcr name a stage 2: use them with --stage 2 or --guest")
        tr = translation.translate(va, cpu, args.regime)
        why = None
        if tr.fault and args.regime == "el1":
            why = translation.init_sections_note(va)
        return WalkResult(tr, cpu, t.symbol_at(va), why)

    def format(self, r, args):
        if isinstance(r, GuestTranslation):
            return format_guest(r, args.explain) if r.is_guest else format_stage2(r, args.explain)
        return format_walk(r, args.explain)


@dataclass(frozen=True)
class WalkResult:
    """`rkvm walk`'s answer: the translation, on which CPU, the VA's symbol, why it is unmapped."""

    translation: Translation
    cpu: int | None
    symbol: str | None
    why: str | None = None     # init_sections_note() for an unmapped kernel VA

    def to_json(self) -> dict:
        out = {**self.translation.to_json(), "cpu": self.cpu, "symbol": self.symbol}
        if self.translation.fault and self.translation.regime.name == "el1" and self.translation.regime.stage == 1:
            out["why"] = self.why
        return out


def format_walk(r: WalkResult, explain: bool = False) -> str:
    tr = r.translation
    sym = f" <{r.symbol}>" if r.symbol else ""
    if tr.walk is None or (not tr.steps and tr.note):   # no tables walked: the note says why
        if tr.fault:
            return f"VA {tr.va:#x}{sym}: {tr.note}\n{tr.fault}"
        return f"VA {tr.va:#x}{sym}: {tr.note}; PA {tr.pa:#x}"
    geo = tr.walk.geometry
    head = (f"VA {tr.va:#x}{sym} via {tr.regime.table_register} ({tr.regime.label}, {geo.granule // 1024}K granule, "
            f"{geo.ia_bits}-bit, start level {geo.start_level})")
    lines = [head]
    if tr.note:
        lines.append(f"  note: {tr.note}")
    for s in tr.steps:
        lines.append(f"  L{s.level}  table {s.table:#x}[{s.index}]  {s.desc.raw:#018x}  {s.desc.describe()}")
        if explain:
            lines.append("      " + _explain_step(s))
    if tr.fault:
        lines.append(f"unmapped: {tr.fault}")
        if r.why:
            lines.append(f"  ({r.why})")
    else:
        kind = "block" if tr.steps[-1].desc.kind == "block" else "page"
        lines.append(f"PA {tr.pa:#x}  (in a {human_size(tr.walk.mapping_size)} {kind})")
    return "\n".join(lines)



def _explain_step(s: Step) -> str:
    kind, output = s.desc.kind, s.desc.output
    if kind == "table":
        return (f"level {s.level}: index {s.index} of this table holds a table descriptor; the next level's "
                f"table is at PA {output:#x}.")
    if kind in ("block", "page"):
        a = s.desc.attrs
        perm = a.get("AP", a.get("S2AP", ""))
        return (f"level {s.level}: a {kind} descriptor ends the walk: output {output:#x}, "
                f"access {perm}, {'executable' if not a.get('PXN', 0) else 'not executable'} at EL1, "
                f"{a.get('MemType', '')}.")
    return f"level {s.level}: {kind} descriptor: the MMU would raise a translation fault here."


# ---- the guest world (issue 16) ----

EXPLAIN_STAGE2 = (
    "An IPA (intermediate physical address) is what the guest takes for a physical address. The hypervisor's "
    "stage 2 (VTTBR_EL2: table base and VMID; VTCR_EL2: IPA size T0SZ, granule TG0, start level SL0) translates "
    "it to the real PA, for the guest's instruction and data accesses and for its stage 1 table fetches. A stage "
    "2 leaf's S2AP (bits [7:6]: bit 6 read, bit 7 write) and XN (bits [54:53]) say what the guest may do there "
    "(there is no user/kernel split in S2AP); MemAttr (bits [5:2]) is combined with the guest's own memory type. "
    "An IPA stage 2 does not map faults to EL2 (a stage 2 abort): that is how a VMM emulates MMIO.")
EXPLAIN_GUEST = (
    "A guest VA goes through two translations: the guest's stage 1 (its TTBRn_EL1, TCR_EL1) gives an IPA, and "
    "the hypervisor's stage 2 gives the PA. The guest's tables are in guest memory, so their addresses are IPAs "
    "too: before the MMU can read a stage 1 descriptor it walks stage 2 for the descriptor's IPA (a fault there "
    "is a stage 2 fault with S1PTW set). Each stage 1 level below shows that fetch. The access is allowed only "
    "where both stages allow it: the combined permissions are their intersection.")


def stage2_line(s: LevelStep, indent: str) -> str:
    text = f"{indent}S2 L{s.level}  table {s.table:#x}[{s.index}]  {_raw(s)}  {s.kind}"
    return _with_output(s, text, "", lambda a: (
        f"S2AP {a.get('S2AP')} XN {a.get('XN', 0):#04b} ({stage2_perms(a)}) "
        f"MemAttr {a.get('MemAttr', 0):#x} {memattr_name(a.get('MemAttr', 0))} AF {a.get('AF')}"))


def _with_output(s: LevelStep, text: str, space: str, leaf) -> str:
    """A level's line with where it leads: a table its next table, a leaf its output and `leaf(attrs)`."""
    if s.kind == "table":
        return text + f" -> {space}{s.output:#x}"
    if s.kind in ("block", "page"):
        return (text + f" -> {space}{s.output:#x}  {leaf(s.attrs)}").rstrip()
    return text


def _raw(s: LevelStep) -> str:
    return "not read" if s.raw is None else f"{s.raw:#018x}"


def _stage2_lines(w: Stage2Walk, indent: str) -> list[str]:
    lines = [stage2_line(s, indent) for s in w.steps]
    if w.truncated:
        lines.append(f"{indent}{w.truncated}")
    elif w.fault:
        lines.append(f"{indent}fault: {w.fault.describe()}")
    else:
        lines.append(f"{indent}-> PA {w.pa:#x}  (in a {human_size(w.size)} {w.steps[-1].kind}, "
                     f"stage 2 allows {w.perms})")
    return lines


def _stage2_head(regime: Regime) -> str:
    geo = regime.geometry
    r = regime.registers
    vmid = regime.stage2_regs().vmid
    tables = 1 << max(0, geo.index_bits(geo.start_level) - geo.stride)
    cat = f", {tables} concatenated start tables" if tables > 1 else ""
    off = "" if regime.mmu_on else "; stage 2 is off now (HCR_EL2.VM = 0): these are the tables it would use"
    return (f"VTTBR_EL2 {r['VTTBR_EL2']:#x} (VMID {vmid}), VTCR_EL2 {r['VTCR_EL2']:#x}: {geo.granule // 1024}K "
            f"granule, {geo.ia_bits}-bit IPA, start level {geo.start_level}{cat}{off}")


def format_stage2(tr: GuestTranslation, explain: bool = False) -> str:
    w = tr.walk
    lines = [f"IPA {tr.address:#x} through stage 2: {_stage2_head(tr.regime)}",
             f"  registers: {tr.regime.source}"]
    if explain:
        lines.append("  " + EXPLAIN_STAGE2)
    lines += _stage2_lines(w, "  ")
    if w.ok:
        lines.append(f"PA {w.pa:#x}")
    else:
        lines.append(f"no PA: {w.fault.describe() if w.fault else w.truncated}")
    return "\n".join(lines)


def _stage1_line(s: LevelStep) -> str:
    at = f"IPA {s.entry:#x}" + (f" = PA {s.entry_pa:#x}" if s.entry_pa is not None else "")
    text = f"  S1 L{s.level}  table IPA {s.table:#x}[{s.index}] at {at}  {_raw(s)}  {s.kind}"
    return _with_output(s, text, "IPA ", lambda a: (
        f"AP {a.get('AP')} PXN {a.get('PXN')} UXN {a.get('UXN')} {a.get('MemType', '')}"))


def format_guest(tr: GuestTranslation, explain: bool = False) -> str:
    w: GuestWalk = tr.walk
    s1 = tr.regime
    lines = [f"guest VA {tr.address:#x} (VMID {w.vmid})"]
    if w.mmu_on:
        geo = s1.geometry
        lines[0] += (f": stage 1 via {w.table_register} {s1.registers[w.table_register]:#x} (TCR_EL1 "
                     f"{s1.registers['TCR_EL1']:#x}: {geo.granule // 1024}K granule, {geo.ia_bits}-bit, start level "
                     f"{geo.start_level})")
    else:
        lines[0] += ": the guest's MMU is off (SCTLR_EL1.M = 0), VA = IPA"
    lines += [f"  stage 1 registers: {s1.source}", f"  stage 2: {_stage2_head(s1.stage2)}",
              f"  stage 2 registers: {s1.stage2.source}"]
    if explain:
        lines.append("  " + EXPLAIN_GUEST)
    for s in w.stage1:
        lines.append(_stage1_line(s))
        if s.fetch is not None:
            lines.append(f"      fetch of IPA {s.entry:#x} through stage 2:")
            lines += _stage2_lines(s.fetch, "        ")
    if w.ipa is not None:
        size = f" (stage 1: in a {human_size(w.stage1_size)} mapping, allows {w.stage1_perms})" if w.stage1_size else ""
        lines.append(f"IPA {w.ipa:#x}{size}")
    if w.stage2 is not None:
        lines.append("  the IPA through stage 2:")
        lines += _stage2_lines(w.stage2, "    ")
    if w.ok:
        lines.append(f"PA {w.pa:#x}  permissions: stage 1 {w.stage1_perms}, stage 2 {w.stage2.perms}, "
                     f"combined {w.perms} (EL1 EL0)")
    else:
        lines.append(f"no PA: {w.fault.describe() if w.fault else w.truncated}")
    return "\n".join(lines)

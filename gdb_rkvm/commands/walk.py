from dataclasses import dataclass

from gdb_rkvm.arch.pagetable import Step
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.translation import GuestTranslation, Translation
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import guest_translation, translation
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int
from gdb_rkvm.commands.format import human_size
from gdb_rkvm.commands.guest_walk_format import format_guest, format_stage2


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
        tr = translation.translate(va, cpu, args.regime, args.stage)
        why = None
        if tr.fault and args.stage == 1 and args.regime == "el1":
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


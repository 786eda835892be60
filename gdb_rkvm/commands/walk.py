from dataclasses import dataclass

from gdb_rkvm.arch.pagetable import Step
from gdb_rkvm.model.translation import Translation
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import translation
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.format import human_size


@only_when(STOPPED)
class RkvmWalk(RkvmCommand):
    """Walk the translation tables for a VA, level by level, as the MMU would.

Usage: rkvm walk VA [--cpu N] [--regime el1|el2] [--stage 2] [--json] [--explain]
VA is a number or a symbol. The EL1&0 regime picks TTBR0_EL1 or TTBR1_EL1 by VA[55]; granule and
sizes come from TCR_EL1 at run time. Tables are read as physical memory.
Example:
  (gdb) rkvm walk rkvm_debug
  VA 0xffff800078542000 via TTBR1_EL1 (EL1&0, 4K granule, 48-bit, start level 0)
    L0  table 0x41a3a000[256]  0x0000000041fff003  table -> 0x41fff000
    ...
  PA 0x4174d000"""

    name = "walk"
    explains = True

    def add_arguments(self, p):
        p.add_argument("va")
        self.add_cpu_argument(p)
        p.add_argument("--regime", choices=("el1", "el2"), default="el1")
        p.add_argument("--stage", type=int, choices=(1, 2), default=1)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        va = translation.address_of(args.va)
        tr = translation.translate(va, cpu, args.regime, args.stage)
        why = None
        if tr.fault and args.stage == 1 and args.regime == "el1":
            why = translation.init_sections_note(va)
        return WalkResult(tr, cpu, t.symbol_at(va), why)

    def format(self, r, args):
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


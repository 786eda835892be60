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
        r = {**translation.translate(va, cpu, args.regime, args.stage), "cpu": cpu, "symbol": t.symbol_at(va)}
        if r["fault"] and args.stage == 1 and args.regime == "el1":
            r["why"] = translation.init_sections_note(va)
        return r

    def format(self, r, args):
        return format_walk(r, args.explain)


def format_walk(r: dict, explain: bool = False) -> str:
    sym = f" <{r['symbol']}>" if r.get("symbol") else ""
    if not r["steps"] and r.get("note"):
        if r["fault"]:
            return f"VA {r['va']:#x}{sym}: {r['note']}\n{r['fault']}"
        return f"VA {r['va']:#x}{sym}: {r['note']}; PA {r['pa']:#x}"
    head = (f"VA {r['va']:#x}{sym} via {r['table_register']} ({r['regime']}, {r['granule'] // 1024}K granule, "
            f"{r['ia_bits']}-bit, start level {r['start_level']})")
    lines = [head]
    if r.get("note"):
        lines.append(f"  note: {r['note']}")
    for s in r["steps"]:
        lines.append(f"  L{s['level']}  table {s['table']:#x}[{s['index']}]  {s['descriptor']:#018x}  {s['text']}")
        if explain:
            lines.append("      " + _explain_step(s))
    if r["fault"]:
        lines.append(f"unmapped: {r['fault']}")
        if r.get("why"):
            lines.append(f"  ({r['why']})")
    else:
        size = r["mapping_size"]
        kind = "block" if r["steps"][-1]["kind"] == "block" else "page"
        lines.append(f"PA {r['pa']:#x}  (in a {human_size(size)} {kind})")
    return "\n".join(lines)


def _explain_step(s: dict) -> str:
    if s["kind"] == "table":
        return (f"level {s['level']}: index {s['index']} of this table holds a table descriptor; the next level's "
                f"table is at PA {s['output']:#x}.")
    if s["kind"] in ("block", "page"):
        a = s["attributes"]
        perm = a.get("AP", a.get("S2AP", ""))
        return (f"level {s['level']}: a {s['kind']} descriptor ends the walk: output {s['output']:#x}, "
                f"access {perm}, {'executable' if not a.get('PXN', 0) else 'not executable'} at EL1, "
                f"{a.get('MemType', '')}.")
    return f"level {s['level']}: {s['kind']} descriptor: the MMU would raise a translation fault here."

"""Text of `rkvm vmmap --stage 2` (IPA -> PA ranges with S2AP/XN permissions and MemAttr) and
`rkvm vmmap --guest` (the guest's stage 1 ranges, each piece with its IPA and the PA stage 2 gives)."""

from gdb_rkvm.arch.guest_map import memattr_name, stage1_perms, stage2_perms
from gdb_rkvm.model.translation import AddressMap, GuestMap
from gdb_rkvm.commands.format import human_size

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

"""Text of `rkvm walk --stage 2 IPA` and `rkvm walk --guest VA`: every level of both stages, each
stage 1 table fetch (an IPA) with its stage 2 walk indented under it, permissions, and faults."""

from gdb_rkvm.arch.guest_map import memattr_name, stage2_perms
from gdb_rkvm.arch.two_stage import GuestWalk, LevelStep, Stage2Walk
from gdb_rkvm.model.translation import GuestTranslation, Regime
from gdb_rkvm.commands.format import human_size

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
    if s.kind == "table":
        return text + f" -> {s.output:#x}"
    if s.kind in ("block", "page"):
        a = s.attrs
        return (text + f" -> {s.output:#x}  S2AP {a.get('S2AP')} XN {a.get('XN', 0):#04b} ({stage2_perms(a)}) "
                f"MemAttr {a.get('MemAttr', 0):#x} {memattr_name(a.get('MemAttr', 0))} AF {a.get('AF')}")
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
    if s.kind == "table":
        return text + f" -> IPA {s.output:#x}"
    if s.kind in ("block", "page"):
        a = s.attrs
        return (text + f" -> IPA {s.output:#x}  AP {a.get('AP')} PXN {a.get('PXN')} UXN {a.get('UXN')} "
                f"{a.get('MemType', '')}").rstrip()
    return text


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

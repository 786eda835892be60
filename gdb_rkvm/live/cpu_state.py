"""Per-CPU EL state as model/snapshot records, built from gdb_target reads and arch decoders."""

from gdb_rkvm.arch import decode, disasm, esr, pstate, regfields
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.snapshot import CpuSummary, ElPicture, Register
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts


def _maybe(name: str, cpu: int) -> int | None:
    try:
        return t.read_register(name, cpu)
    except RkvmError:
        return None


def cpu_summary(cpu: int, marks) -> CpuSummary:
    """One row of `rkvm cpus`: EL/SP, PC with symbol, VBAR_EL2 and what it points at, SP_EL2."""
    cpsr = t.read_register("cpsr", cpu)
    pc = t.read_register("pc", cpu)
    el = pstate.current_el_from_cpsr(cpsr)
    vbar = _maybe("VBAR_EL2", cpu)
    target = classify(vbar, marks) if vbar is not None else None
    pc_sym = kernel_facts.code_symbol(pc, el, marks)
    return CpuSummary(
        cpu=cpu, el=el, mode=pstate.mode_name(cpsr), pc=pc, pc_symbol=pc_sym,
        vbar_el2=vbar, vbar_el2_kind=target.kind if target else None,
        vbar_el2_points_at=target.text if target else None,
        vbar_el2_symbol=kernel_facts.el2_symbol(vbar, marks) if vbar is not None else None,
        sp_el2=_maybe("SP_EL2", cpu),
    )


EL_REGISTERS = ["SP_EL0", "SP_EL1", "SP_EL2", "ELR_EL1", "ELR_EL2", "SPSR_EL1", "SPSR_EL2", "ESR_EL1", "ESR_EL2",
                "FAR_EL1", "FAR_EL2", "HPFAR_EL2", "VBAR_EL1", "VBAR_EL2", "HCR_EL2", "SCTLR_EL2"]


def el_picture(cpu: int, marks) -> ElPicture:
    """Everything `rkvm el` shows for one CPU: raw values, decodings, symbols."""
    cpsr = t.read_register("cpsr", cpu)
    regs = {}
    for name in EL_REGISTERS:
        value = _maybe(name, cpu)
        entry = {"value": value}
        if value is not None and name in ("SPSR_EL1", "SPSR_EL2", "ESR_EL1", "ESR_EL2", "HCR_EL2", "SCTLR_EL2"):
            dec = decode.decode(name, value)
            entry.update(summary=dec.summary, explain=dec.explain,
                         fields=[f.to_dict() for f in dec.fields])
        if value is not None and name in ("ELR_EL1", "VBAR_EL1"):
            entry["symbol"] = t.symbol_at(value)
        if value is not None and name in ("ELR_EL2", "VBAR_EL2"):
            # ELR_EL2 is an EL1 VA when EL2 was entered from EL1 and a PA when taken from EL2 itself
            entry["symbol"] = t.symbol_at(value) or kernel_facts.el2_symbol(value, marks)
        regs[name] = entry
    elr2, spsr2 = regs["ELR_EL2"]["value"], regs["SPSR_EL2"]["value"]
    if elr2 is not None and spsr2 is not None and pstate.exception_level(spsr2) == 2:
        # taken at EL2 itself: ELR_EL2 is the physical address of the EL2 instruction that trapped
        try:
            regs["ELR_EL2"]["insn"] = disasm.disassemble(t.read_physical(elr2, 4), elr2, 1)[0].text()
        except RkvmError:
            pass
    for el in (1, 2):
        e = regs[f"ESR_EL{el}"]
        if e["value"] is not None and esr.never_taken(e["value"]):
            e["summary"] = esr.never_taken_summary(el)
    vbar = regs["VBAR_EL2"]["value"]
    return ElPicture(
        cpu=cpu, el=pstate.current_el_from_cpsr(cpsr), mode=pstate.mode_name(cpsr), cpsr=cpsr,
        pc=t.read_register("pc", cpu),
        pc_symbol=kernel_facts.code_symbol(t.read_register("pc", cpu), pstate.current_el_from_cpsr(cpsr), marks),
        registers={name: Register(**e) for name, e in regs.items()},
        hcr_el2_set=decode.decode("HCR_EL2", regs["HCR_EL2"]["value"]).summary
        if regs["HCR_EL2"]["value"] is not None else None,
        el2_mmu_on=(regfields.mmu_enabled(regs["SCTLR_EL2"]["value"])
                    if regs["SCTLR_EL2"]["value"] is not None else None),
        vbar_el2_points_at=classify(vbar, marks).text if vbar is not None else None,
    )

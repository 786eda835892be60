"""Breakpoints on the way into EL2 (VBAR_EL2 + slot) and out of it (the ERETs of the EL2 code),
and what one trap looks like from there. Addresses are physical: EL2 runs with its MMU off."""

import gdb

from gdb_rkvm.model import stub_abi
from gdb_rkvm.arch import disasm, esr, pstate, regfields, smccc, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts


def vbar_el2_by_cpu() -> dict[int, int]:
    """{cpu: VBAR_EL2} for every vCPU whose VBAR_EL2 is set (0 means not set yet)."""
    out = {}
    for cpu, _ in t.cpu_threads():
        v = t.read_register("VBAR_EL2", cpu)
        if v:
            out[cpu] = v
    return out


def eret_addresses(vbar: int, span: int = 0x1000) -> list[int]:
    """PAs of the ERET instructions in the EL2 code around a vector table: the table and what follows
    it in the same page (the rkvm stub and the kernel's hyp-stub both keep their handlers there)."""
    try:
        code = t.read_physical(vbar, span)
    except RkvmError:
        return []
    return [i.address for i in disasm.disassemble(code, vbar) if disasm.is_exception_return(i)]


def current_cpu() -> int:
    return t.cpu_of(gdb.selected_thread())


def names_for_function(x0: int) -> str:
    """A name for an HVC function ID in x0 (the kernel's hyp-stub calls and rkvm's own)."""
    kernel = {0: "HVC_SET_VECTORS", 1: "HVC_SOFT_RESTART", 2: "HVC_RESET_VECTORS", 3: "HVC_FINALISE_EL2"}
    if x0 in kernel:
        return kernel[x0]
    for name, value in stub_abi.hvc_calls().items():
        if value == x0:
            return f"RKVM_HVC_{name}"
    fid = smccc.decode_function_id(x0)   # SMCCC: PSCI, SMCCC_VERSION... (fast calls only)
    return fid.label if fid is not None else ""


def smccc_call(regs: dict) -> str:
    """'PSCI CPU_ON(target_cpu=0x1 (...), entry_point_address=..., context_id=0x0)' when x0 is an SMCCC
    function ID, else ''."""
    call = smccc.decode_call(regs["x0"], regs["x1"], regs["x2"], regs["x3"])
    return call.summary if call is not None else ""


def trap_at_entry(cpu: int | None = None) -> dict:
    """What the CPU stopped at an EL2 vector knows about the exception it is taking."""
    cpu = current_cpu() if cpu is None else cpu
    esr_v, elr, spsr = (t.read_register(n, cpu) for n in ("ESR_EL2", "ELR_EL2", "SPSR_EL2"))
    pc = t.read_register("pc", cpu)
    vbar = t.read_register("VBAR_EL2", cpu)
    regs = {f"x{n}": t.read_register(f"x{n}", cpu) for n in range(8)}
    ec = esr.exception_class(esr_v)
    is_hvc = ec == esr.EC_HVC64
    caller = (elr - 4) if is_hvc else elr  # ELR_EL2 is after the hvc (preferred return address)
    marks = kernel_facts.landmarks([vbar])
    return {
        "cpu": cpu, "pc": pc, "slot": vectors.slot_name(pc - vbar), "slot_offset": pc - vbar,
        "esr": esr_v, "esr_summary": esr.decode(esr_v).summary, "ec": ec, "is_hvc": is_hvc,
        "imm16": esr.hvc_immediate(esr_v), "elr": elr, "spsr": spsr,
        "from_mode": pstate.mode_name(spsr), "from_el": pstate.exception_level(spsr),
        "caller": caller, "caller_symbol": t.symbol_at(caller), "registers": regs,
        "function": names_for_function(regs["x0"]), "handler_symbol": kernel_facts.el2_symbol(pc, marks),
        "is_smc": ec == esr.EC_SMC64, "call": smccc_call(regs),
    }


def trap_at_smc(pc: int, imm: int, cpu: int | None = None) -> dict:
    """A CPU stopped on an SMC instruction (not executed yet): its SMCCC call, from x0..x7."""
    cpu = current_cpu() if cpu is None else cpu
    regs = {f"x{n}": t.read_register(f"x{n}", cpu) for n in range(8)}
    cpsr = t.read_register("cpsr", cpu)
    try:
        tsc = regfields.smc_traps_to_el2(t.read_register("HCR_EL2", cpu))
    except RkvmError:
        tsc = False
    return {
        "cpu": cpu, "pc": pc, "slot": "", "slot_offset": None, "esr": None, "esr_summary": f"SMC #{imm:#x}",
        "ec": esr.EC_SMC64, "is_hvc": False, "is_smc": True, "imm16": imm, "elr": None, "spsr": None,
        "from_mode": pstate.mode_name(cpsr), "from_el": pstate.current_el_from_cpsr(cpsr), "caller": pc,
        "caller_symbol": t.symbol_at(pc), "registers": regs, "function": names_for_function(regs["x0"]),
        "handler_symbol": None, "call": smccc_call(regs),
        "goes_to": "EL2 (HCR_EL2.TSC traps it)" if tsc and pstate.current_el_from_cpsr(cpsr) == 1 else "EL3",
    }


def quick_trap(cpu: int, r: dict) -> dict:
    """The few facts a filter needs, from ESR_EL2/ELR_EL2/SPSR_EL2/x0/x1 already read."""
    imm = esr.hvc_immediate(r["ESR_EL2"])
    is_hvc = imm is not None
    return {"cpu": cpu, "is_hvc": is_hvc, "imm16": imm,
            "from_el": pstate.exception_level(r["SPSR_EL2"]), "caller": r["ELR_EL2"] - 4 if is_hvc else r["ELR_EL2"],
            "x0": r["x0"], "x1": r["x1"]}


def format_trap(tr: dict) -> str:
    sym = f" <{tr['caller_symbol']}>" if tr["caller_symbol"] else ""
    what = f"HVC #{tr['imm16']:#x}" if tr["is_hvc"] else (f"SMC #{tr['imm16']:#x}" if tr.get("is_smc") and
                                                           tr["imm16"] is not None else tr["esr_summary"])
    fn = f" ({tr['function']})" if tr["function"] else ""
    regs = tr["registers"]
    lines = [f"rkvm: CPU {tr['cpu']}: {what} from {tr['from_mode']} at {tr['caller']:#x}{sym}",
             f"  x0={regs['x0']:#x}{fn} x1={regs['x1']:#x} x2={regs['x2']:#x} x3={regs['x3']:#x}",
             f"  x4={regs['x4']:#x} x5={regs['x5']:#x} x6={regs['x6']:#x} x7={regs['x7']:#x}"]
    if tr.get("call"):
        lines.append(f"  {tr['call']}")
    if tr.get("is_smc") and tr["esr"] is None:
        where = tr.get("goes_to", "EL3")
        lines.append(f"  stopped on the SMC instruction: it has not run yet ('stepi' runs it); it goes to {where}"
                     + (", which QEMU plays when the board has no EL3 firmware" if where == "EL3" else ""))
    else:
        lines.append(f"  entered EL2 at {tr['pc']:#x} <{tr['handler_symbol'] or '?'}> ({tr['slot']}), "
                     f"ESR_EL2 {tr['esr']:#x}")
    return "\n".join(lines)

"""Breakpoints on the way into EL2 (VBAR_EL2 + slot) and out of it (the ERETs of the EL2 code),
and what one trap looks like from there. Addresses are physical: EL2 runs with its MMU off."""

import gdb

from .. import stub_abi
from ..arch import disasm, esr, pstate, vectors
from ..errors import RkvmError
from . import gdb_target as t
from . import kernel_facts


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
    return ""


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
    what = f"HVC #{tr['imm16']:#x}" if tr["is_hvc"] else tr["esr_summary"]
    fn = f" ({tr['function']})" if tr["function"] else ""
    regs = tr["registers"]
    lines = [f"rkvm: CPU {tr['cpu']}: {what} from {tr['from_mode']} at {tr['caller']:#x}{sym}",
             f"  x0={regs['x0']:#x}{fn} x1={regs['x1']:#x} x2={regs['x2']:#x} x3={regs['x3']:#x}",
             f"  x4={regs['x4']:#x} x5={regs['x5']:#x} x6={regs['x6']:#x} x7={regs['x7']:#x}",
             f"  entered EL2 at {tr['pc']:#x} <{tr['handler_symbol'] or '?'}> ({tr['slot']}), "
             f"ESR_EL2 {tr['esr']:#x}"]
    return "\n".join(lines)

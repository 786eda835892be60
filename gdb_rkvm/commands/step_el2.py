import gdb

from ..argtypes import seconds
from ..arch import disasm, pstate, sysregs
from ..errors import RkvmError
from ..target import el2_traps, kernel_facts
from ..target import gdb_target as t
from ..target.gdb_state import STATE
from ..target.resume import Deadline, continue_until
from .base import STOPPED, RkvmCommand, only_when
from .hvc import HvcFilter, HvcTracer

GPRS = [f"x{n}" for n in range(31)] + ["sp"]


def _snapshot(cpu: int) -> dict:
    STATE.stop_cache.clear()
    return {r: t.read_register(r, cpu) for r in GPRS + ["pc", "cpsr"]}


def _insn_at(pc: int, el: int) -> disasm.Insn:
    code = t.read_physical(pc, 4) if el == 2 else t.read_virtual(pc, 4)
    return disasm.disassemble(code, pc, 1)[0]


def _note(insn: disasm.Insn, before: dict, after: dict) -> str:
    m = insn.mnemonic
    name = disasm.system_register_operand(insn)
    if name is not None:
        reg = sysregs.lookup(name)
        what = f"reads {name}" if m == "mrs" else f"writes {name}"
        return what + (f": {reg.doc}" if reg else "")
    if disasm.is_exception_return(insn):
        return (f"ERET: PSTATE <- SPSR_EL2 ({pstate.mode_name(after['cpsr'])}), PC <- ELR_EL2 ({after['pc']:#x})")
    if m == "hvc":
        return "HVC: exception to EL2, enters at VBAR_EL2 + 0x400"
    if m in ("br", "blr", "b", "bl", "ret", "cbz", "cbnz") or m.startswith("b."):
        return "branch taken" if after["pc"] != before["pc"] + 4 else "branch not taken"
    return ""


@only_when(STOPPED)
class RkvmStepEl2(RkvmCommand):
    """Step through the EL2 code, one instruction at a time, until ERET takes the CPU back down.

Usage: rkvm step-el2 [--max N] [--cpu N] [--json] [--explain]
From EL1: runs to the next HVC into EL2 (or steps into it if the PC is on an `hvc`); at EL2: starts
at once. Each instruction is printed once: address, symbol, disassembly, the registers it changed,
and a note for MRS/MSR/ERET/HVC. Ends with the transition line. Other vCPUs stay stopped while it
steps (scheduler-locking). At most N instructions (default 200).
Example:
  (gdb) rkvm step-el2
  0x40a60400 <rkvm_vec_lower64_sync>    b #0x40a60b00                  branch taken
  0x40a60b00 <rkvm_stub_el1_sync>       mrs x2, esr_el2                x2=0x5a00004b  reads ESR_EL2: ...
  ...
  EL2h -> EL1h via ERET to 0xffff80007854005c <rkvm_hvc+0x3c> (ELR_EL2), SPSR_EL2 0x800000c5 (EL1h, DAIF masked: IF)"""

    name = "step-el2"
    explains = True

    def add_arguments(self, p):
        p.add_argument("--max", type=int, default=200)
        p.add_argument("--timeout", type=seconds, default=60.0, help="seconds to wait for the next HVC")
        self.add_cpu_argument(p)

    def run(self, args):
        if args.cpu is not None:
            t.thread_for_cpu(args.cpu).switch()
        cpu = el2_traps.current_cpu()
        entered = self._enter_el2(cpu, args.timeout)
        cpu = el2_traps.current_cpu()
        entry = el2_traps.trap_at_entry(cpu) if entered != "already at EL2" else None
        marks = kernel_facts.landmarks([t.read_register("VBAR_EL2", cpu)])
        steps, transition = [], None
        old_lock = gdb.parameter("scheduler-locking")
        old_quiet = gdb.parameter("suppress-cli-notifications")
        gdb.execute("set scheduler-locking on", to_string=True)
        gdb.execute("set suppress-cli-notifications on", to_string=True)  # no source line per stepi
        try:
            for _ in range(max(1, args.max)):
                before = _snapshot(cpu)
                insn = _insn_at(before["pc"], 2)
                gdb.execute("stepi", to_string=True)
                after = _snapshot(cpu)
                changed = {r: after[r] for r in GPRS if after[r] != before[r]}
                steps.append({"pc": before["pc"], "symbol": kernel_facts.el2_symbol(before["pc"], marks),
                              "insn": insn.text(), "changed": changed, "note": _note(insn, before, after)})
                if pstate.current_el_from_cpsr(after["cpsr"]) < 2:
                    spsr = t.read_register("SPSR_EL2", cpu)
                    transition = {"from": pstate.mode_name(before["cpsr"]), "to": pstate.mode_name(after["cpsr"]),
                                  "via": insn.mnemonic.upper(), "pc": after["pc"], "symbol": t.symbol_at(after["pc"]),
                                  "spsr": spsr, "spsr_summary": pstate.decode(spsr).summary, "x0": after["x0"]}
                    break
        finally:
            gdb.execute(f"set scheduler-locking {old_lock}", to_string=True)
            gdb.execute(f"set suppress-cli-notifications {'on' if old_quiet else 'off'}", to_string=True)
        return {"cpu": cpu, "entered": entered, "entry": entry, "steps": steps, "transition": transition}

    def _enter_el2(self, cpu: int, timeout: float) -> str:
        el = t.current_el(cpu)
        if el == 2:
            return "already at EL2"
        pc = t.read_register("pc", cpu)
        if el == 1 and _insn_at(pc, 1).mnemonic == "hvc":
            old = gdb.parameter("scheduler-locking")
            gdb.execute("set scheduler-locking on", to_string=True)
            try:
                gdb.execute("stepi", to_string=True)
            finally:
                gdb.execute(f"set scheduler-locking {old}", to_string=True)
            STATE.stop_cache.clear()
            if t.current_el(cpu) != 2:
                raise RkvmError("stepping the hvc did not enter EL2")
            return "stepped into the hvc"
        # run to the next HVC entry on any CPU, then follow that CPU
        deadline = Deadline(timeout)
        tracer = _FirstEntry(deadline)
        tracer.arm()
        try:
            continue_until(deadline)
        finally:
            tracer.disarm()
        STATE.stop_cache.clear()
        if tracer.cpu is None:
            raise RkvmError(f"no HVC entered EL2 within {timeout:g} s (the target is stopped)")
        t.thread_for_cpu(tracer.cpu).switch()
        return f"ran to the next HVC (CPU {tracer.cpu})"

    def format(self, r, args):
        lines = [f"rkvm: CPU {r['cpu']}: {r['entered']}"]
        if r["entry"]:
            e = r["entry"]
            lines.append(f"  entry: {e['esr_summary']} from {e['from_mode']} at {e['caller']:#x}"
                         + (f" <{e['caller_symbol']}>" if e["caller_symbol"] else ""))
        for s in r["steps"]:
            sym = f"<{s['symbol']}>" if s["symbol"] else ""
            changed = " ".join(f"{k}={v:#x}" for k, v in s["changed"].items())
            lines.append(f"{s['pc']:#x} {sym:<32} {s['insn']:<28} {changed}  {s['note']}".rstrip())
            why = _teach(s["insn"]) if args.explain else ""
            if why:
                lines.append(f"      {why}")
        tr = r["transition"]
        if tr:
            sym = f" <{tr['symbol']}>" if tr["symbol"] else ""
            lines.append(f"{tr['from']} -> {tr['to']} via {tr['via']} to {tr['pc']:#x}{sym} (ELR_EL2), "
                         f"SPSR_EL2 {tr['spsr']:#x} ({tr['spsr_summary']}); x0 = {tr['x0']:#x}")
        else:
            lines.append(f"still at EL2 after {len(r['steps'])} instructions (--max)")
        if args.explain and tr:
            lines.append("ERET restores PSTATE from SPSR_EL2 (so the EL and interrupt masks) and jumps to ELR_EL2: "
                         "the caller resumes right after its hvc, with the stub's result in x0.")
        return "\n".join(lines)


def _teach(insn_text: str) -> str:
    """A sentence for a learner about the instructions that matter at EL2 (--explain)."""
    m = insn_text.split()[0]
    if "[sp" in insn_text and m.startswith("st"):
        return "a push on the EL2 stack: SP_EL2 must point at memory this CPU owns (set it per CPU)"
    if "[sp" in insn_text and m.startswith("ld"):
        return "a pop from the EL2 stack"
    if m == "adr":
        return "a PC-relative address: the stub works wherever it was copied, no absolute addresses"
    if m == "br":
        return "an indirect branch through a table computed from the function ID in x0"
    return ""


class _FirstEntry(HvcTracer):
    """Stops at the first entry to EL2 through Lower EL AArch64 Synchronous (any ESR)."""

    def __init__(self, deadline):
        super().__init__(HvcFilter(), None, live=False, deadline=deadline)
        self.cpu = None

    def on_entry(self, bp) -> bool:
        if self.deadline.passed():
            return True
        if bp.pa not in self.entry_pas:
            return False
        self.cpu = el2_traps.current_cpu()
        return True


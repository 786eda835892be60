import time

import gdb

from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.arch import disasm, pstate, regfields, sysregs, vectors
from gdb_rkvm.arch.stage2 import vmid
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import el2_traps, kernel_facts, trap_watch
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.resume import Deadline, continue_until, quiet_stepi
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.live.trap import ANY_TRAP, Trap

GPRS = [f"x{n}" for n in range(31)] + ["sp"]

# What to do in the guest to make an HVC happen: rkvm.ko's debugfs file (docs/hvc-abi.md).
HVC_RECIPE = "echo ping 1 > /sys/kernel/debug/rkvm/hvc"


def _snapshot(cpu: int) -> dict:
    return {r: t.read_register(r, cpu) for r in GPRS + ["pc", "cpsr"]}


def _insn_at(pc: int, el: int) -> disasm.Insn:
    code = t.read_physical(pc, 4) if el == 2 else t.read_virtual(pc, 4)
    return disasm.disassemble(code, pc, 1)[0]


def _landings(insn: disasm.Insn, regs: dict, cpu: int) -> list[int]:
    """Where one step of `insn` at EL2 can end: the next instruction, a branch target, ELR_EL2 for
    an ERET, VBAR_EL2 + 0x200 for an exception taken at EL2 itself, and the instruction itself (QEMU
    sometimes reports a step that executed nothing)."""
    out = [insn.address, insn.address + 4, disasm.branch_target(insn)]
    reg = disasm.branch_register(insn)
    if reg in regs:
        out.append(regs[reg])
    if disasm.is_exception_return(insn):
        out.append(t.read_register("ELR_EL2", cpu))
    out.append(t.read_register("VBAR_EL2", cpu) + vectors.CURRENT_SPX_SYNC)
    return out


def _world(cpu: int) -> dict:
    """Which world EL1 is now: the guest when HCR_EL2.VM = 1 (with its VMID from VTTBR_EL2), else the host."""
    hcr = t.read_register("HCR_EL2", cpu)
    if not regfields.stage2_enabled(hcr):
        return {"guest": False, "vmid": None}
    return {"guest": True, "vmid": vmid(t.read_register("VTTBR_EL2", cpu), t.read_register("VTCR_EL2", cpu))}


def world_line(tr: dict) -> str:
    """The world switch an ERET made: 'ERET to EL1 in the guest, VMID 1, PC 0x80000000' or back in the host."""
    el = pstate.exception_level(tr["spsr"])
    if tr["guest"]:
        return f"ERET to EL{el} in the guest, VMID {tr['vmid']}, PC {tr['pc']:#x}"
    sym = f" <{tr['symbol']}>" if tr["symbol"] else ""
    return f"ERET to EL{el} in the host, PC {tr['pc']:#x}{sym} (after its RKVM_HVC_VCPU_RUN hvc)"


def switch_explained(tr: dict, written: list[str]) -> list[str]:
    """What the world switch saved and loaded (--explain), with the system registers these steps wrote."""
    regs = ", ".join(dict.fromkeys(written)) or "none seen"
    if tr["guest"]:
        head = ("RKVM_HVC_VCPU_RUN saved the host's x18-x30, ELR_EL2, SPSR_EL2, HCR_EL2, SP_EL0/SP_EL1 and its EL1 "
                "system registers in this CPU's host save area (RKVM_HOST_*), then loaded the guest's from the vCPU "
                "(RKVM_VCPU_*): its EL1 registers, SP_EL1, PC and PSTATE (into ELR_EL2/SPSR_EL2), its stage 2 "
                "(VTTBR_EL2 with the VMID, VTCR_EL2), dropped that VMID's TLB entries, set HCR_EL2 (VM = 1: stage 2 "
                "on) and loaded x0-x30. From here the EL1 registers are the guest's; the host's are in the save area.")
    else:
        head = ("rkvm_stub_guest_exit saved the guest's x0-x30, the exit syndrome (ESR_EL2, FAR_EL2, HPFAR_EL2), its "
                "PC and PSTATE (ELR_EL2, SPSR_EL2), SP_EL0/SP_EL1 and its EL1 registers in the vCPU, put the host's "
                "HCR_EL2 back (VM = 0) and VTTBR_EL2 = 0 (VMID 0), loaded the host's EL1 registers, SP_EL1, "
                "ELR_EL2/SPSR_EL2 and x18-x30 from the host save area, and returns RKVM_EXIT_* in x0, the vCPU in "
                "x1 to the host's hvc.")
    return [head, f"System registers these steps wrote: {regs}."]


def _note(insn: disasm.Insn, before: dict, after: dict, namer) -> str:
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
    if disasm.is_branch(insn):
        taken = after["pc"] != before["pc"] + 4
        sym = namer(after["pc"]) if taken else None
        return ("branch taken" + (f" to <{sym}>" if sym else "")) if taken else "branch not taken"
    return ""


@only_when(STOPPED)
class RkvmStepEl2(RkvmCommand):
    """Step through the EL2 code, one instruction at a time, until ERET takes the CPU back down.

Usage: rkvm step-el2 [--max N] [--timeout S] [--cpu N] [--json] [--explain]
At EL2 (stopped by `rkvm hvc catch`, say): steps from there. On an `hvc` at EL1: steps into it.
Otherwise it lets the guest run until the next HVC enters EL2 on any CPU (at most S seconds, default
60; Ctrl-C stops the wait) and says so first: nothing happens until the guest issues one. Make one
from the guest's shell (`rkvm console` in another terminal; the console shows nothing while GDB
holds the guest stopped, and comes alive while this command lets it run):
  echo ping 1 > /sys/kernel/debug/rkvm/hvc
Each instruction is printed once: address, symbol, disassembly, the registers it changed, and a
note for MRS/MSR/ERET/HVC and branches. Ends with the transition line. Other vCPUs stay stopped
while it steps (scheduler-locking). At most N instructions (default 200).
Example:
  (gdb) rkvm step-el2
  rkvm: CPU 1 was already at EL2, at 0x40a60400 <rkvm_vec_lower64_sync>: stepping from there
    entry: EC 0x16 HVC64: HVC #0x4b from EL1h at 0xffff800078540060 <rkvm_hvc+0x40>
  0x40a60400 <rkvm_vec_lower64_sync>    b #0x40a60b00 <rkvm_stub_el1_sync>    branch taken
  0x40a60b00 <rkvm_stub_el1_sync>       mrs x2, esr_el2                x2=0x5a00004b  reads ESR_EL2: ...
  ...
  EL2h -> EL1h via ERET to 0xffff800078540064 <rkvm_hvc+0x44> (ELR_EL2), SPSR_EL2 0x80000005 (EL1h, ...)"""

    name = "step-el2"
    explains = True

    def add_arguments(self, p):
        p.add_argument("--max", type=int, default=200, help="at most this many instructions (>= 1)")
        p.add_argument("--timeout", type=seconds, default=60.0, help="seconds to wait for the next HVC")
        self.add_cpu_argument(p)

    def run(self, args):
        if args.max < 1:
            raise RkvmError(f"--max {args.max}: at least 1 instruction")
        if not args.timeout > 0:
            raise RkvmError(f"--timeout {args.timeout:g}: a number of seconds above 0")
        if args.cpu is not None:
            t.thread_for_cpu(args.cpu).switch()
        cpu = el2_traps.current_cpu()
        entered, waited = self._enter_el2(cpu, args.timeout, announce=not args.json)
        cpu = el2_traps.current_cpu()
        start_pc = t.read_register("pc", cpu)
        vbar = t.read_register("VBAR_EL2", cpu)
        marks = kernel_facts.landmarks([vbar])
        # the trap being taken, when the CPU is at one of the vector table's slots
        entry = trap_watch.trap_now(cpu) if vectors.contains(vbar, start_pc) else None

        def namer(pc):
            return kernel_facts.el2_symbol(pc, marks) if pc < 1 << 48 else t.symbol_at(pc)

        steps, transition, self.repeated = [], None, 0
        # HCR_EL2.VM at EL2 is the world the CPU came from (a guest exit keeps it set until the stub
        # puts the host's HCR_EL2 back); at the ERET, the world it goes to
        started_in_guest = _world(cpu)["guest"]
        old_lock = gdb.parameter("scheduler-locking")
        old_quiet = gdb.parameter("suppress-cli-notifications")
        gdb.execute("set scheduler-locking on", to_string=True)
        gdb.execute("set suppress-cli-notifications on", to_string=True)  # no [Switching to thread]
        try:
            for _ in range(args.max):
                before = _snapshot(cpu)
                insn = _insn_at(before["pc"], 2)
                after = self._step(insn, before, cpu)
                changed = {r: after[r] for r in GPRS if after[r] != before[r]}
                target = disasm.branch_target(insn)
                text = insn.text() + (f" <{namer(target)}>" if target is not None and namer(target) else "")
                steps.append({"pc": before["pc"], "symbol": kernel_facts.el2_symbol(before["pc"], marks),
                              "insn": text, "changed": changed, "note": _note(insn, before, after, namer)})
                if pstate.current_el_from_cpsr(after["cpsr"]) < 2:
                    spsr = t.read_register("SPSR_EL2", cpu)
                    world = _world(cpu)
                    transition = {"from": pstate.mode_name(before["cpsr"]), "to": pstate.mode_name(after["cpsr"]),
                                  "via": insn.mnemonic.upper(), "pc": after["pc"],
                                  "symbol": None if world["guest"] else t.symbol_at(after["pc"]),
                                  "spsr": spsr, "spsr_summary": pstate.decode(spsr).summary, "x0": after["x0"],
                                  **world, "switched": world["guest"] != started_in_guest}
                    break
        finally:
            gdb.execute(f"set scheduler-locking {old_lock}", to_string=True)
            gdb.execute(f"set suppress-cli-notifications {'on' if old_quiet else 'off'}", to_string=True)
        return {"cpu": cpu, "entered": entered, "waited": waited, "start_pc": start_pc,
                "start_symbol": namer(start_pc), "entry": entry, "steps": steps, "transition": transition,
                "steps_repeated": self.repeated}

    def _step(self, insn, before: dict, cpu: int) -> dict:
        """One instruction, once. QEMU's gdbstub can report a step that executed nothing (same PC,
        same registers): that is stepped again, not printed twice."""
        for _ in range(3):
            quiet_stepi(_landings(insn, before, cpu))
            after = _snapshot(cpu)
            if after["pc"] != before["pc"] or disasm.branch_target(insn) == before["pc"]:
                return after
            self.repeated += 1
        raise RkvmError(f"stepi at {before['pc']:#x} ({insn.text()}) did not advance in 3 tries")

    def _enter_el2(self, cpu: int, timeout: float, announce: bool) -> tuple[str, float]:
        el = t.current_el(cpu)
        if el == 2:
            return "already at EL2", 0.0
        pc = t.read_register("pc", cpu)
        if el == 1 and _insn_at(pc, 1).mnemonic == "hvc":
            old = gdb.parameter("scheduler-locking")
            gdb.execute("set scheduler-locking on", to_string=True)
            try:
                quiet_stepi([t.read_register("VBAR_EL2", cpu) + vectors.LOWER_A64_SYNC, pc + 4])
            finally:
                gdb.execute(f"set scheduler-locking {old}", to_string=True)
            if t.current_el(cpu) != 2:
                raise RkvmError("stepping the hvc did not enter EL2")
            return "stepped into the hvc", 0.0
        # run to the next HVC entry on any CPU, then follow that CPU
        if not el2_traps.vbar_el2_by_cpu():
            raise RkvmError("VBAR_EL2 is not set on any CPU yet: no HVC can enter EL2 (boot further first)")
        if announce:
            gdb.write(f"rkvm: CPU {cpu} is at EL{el}: letting the guest run until an HVC enters EL2 on any CPU "
                      f"(at most {timeout:g} s; Ctrl-C stops). Nothing happens until the guest makes one: "
                      f"in its shell ('rkvm console' in another terminal: blank while GDB holds the guest, "
                      f"alive now), type\n        {HVC_RECIPE}\n")
            gdb.flush()
        deadline = Deadline(timeout)
        first: list[Trap] = []
        watch = trap_watch.TrapWatch(lambda tr: first.append(tr) or True, trap_filter=ANY_TRAP, deadline=deadline)
        start = time.monotonic()
        with trap_watch.catch_suspended("step-el2"):
            watch.arm()
            try:
                continue_until(deadline)
            finally:
                watch.disarm()
        waited = time.monotonic() - start
        if not first:
            if not deadline.passed():
                raise RkvmError(f"interrupted after {waited:.1f} s: no HVC entered EL2 (the target is stopped)")
            raise RkvmError(f"no HVC entered EL2 within {timeout:g} s (the target is stopped; make one with "
                            f"'{HVC_RECIPE}' in the guest's shell while this command waits)")
        t.thread_for_cpu(first[0].cpu).switch()
        return f"ran to the next HVC (CPU {first[0].cpu})", waited

    def format(self, r, args):
        at = f"{r['start_pc']:#x}" + (f" <{r['start_symbol']}>" if r["start_symbol"] else "")
        head = {"already at EL2": f"rkvm: CPU {r['cpu']} was already at EL2, at {at}: stepping from there",
                "stepped into the hvc": f"rkvm: CPU {r['cpu']} stepped into its hvc: now at {at}"}
        lines = [head.get(r["entered"], f"rkvm: CPU {r['cpu']}: an HVC entered EL2 after {r['waited']:.1f} s, "
                                        f"at {at}")]
        if r["entry"]:
            lines.append(format_entry(r["entry"]))
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
            if tr.get("switched"):
                lines.append(world_line(tr))
        else:
            lines.append(f"still at EL2 after {len(r['steps'])} instructions (--max {len(r['steps'])}); "
                         "run 'rkvm step-el2' again to go on")
        if args.explain and tr and tr.get("switched"):
            written = [s["note"].split(":")[0][len("writes "):] for s in r["steps"] if s["note"].startswith("writes ")]
            lines += switch_explained(tr, written)
        elif args.explain and tr:
            lines.append("ERET restores PSTATE from SPSR_EL2 (so the EL and interrupt masks) and jumps to ELR_EL2: "
                         "the caller resumes right after its hvc, with the stub's result in x0.")
        return "\n".join(lines)


def format_entry(e: Trap) -> str:
    """The trap a step-el2 started in: the syndrome, the caller and the call (x0, x1)."""
    return (f"  entry: {e.esr_summary} from {e.from_mode} at {e.caller:#x}"
            + (f" <{e.caller_symbol}>" if e.caller_symbol else "")
            + f", x0 = {e.x(0):#x}" + (f" ({e.function})" if e.function else "") + f", x1 = {e.x(1):#x}")


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

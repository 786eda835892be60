"""`rkvm tour`: a guided walk, one step at a time, through what an arm64 CPU does at EL2 on the live
lab: from reset through the kernel's boot at EL2 (its hyp-stub, the ERET down to EL1, its one HVC,
the second CPU leaving reset), rkvm.ko replacing the vectors, an HVC caught and stepped, the
vmalloc trap, and an HVC the learner types.

Every step runs real commands through GDB/MI, prints them as they would appear at the (gdb)
prompt, and says what to look at. Enter goes on, q quits; --all (or a stdin that is not a
terminal) prints every step without pausing. The boot story uses breakpoints on the kernel's boot
code (`rkvm run-to boot-hyp-stub | boot-eret | cpu-start`), which a learner can retype.
"""

import re
import sys
import textwrap
import threading
import time
from pathlib import Path

from gdb_rkvm.qemu import session
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.host.mi import GdbMi
from gdb_rkvm.host.tour_guest import GUEST_STEPS
from gdb_rkvm.host.tour_step import Step

PING = "echo ping 0x77 > /sys/kernel/debug/rkvm/hvc"
YOUR_HVC = "echo ping 0x2a > /sys/kernel/debug/rkvm/hvc; cat /sys/kernel/debug/rkvm/hvc"


STEPS = [
    Step("Reset: two CPUs at EL2, one of them not started",
         "QEMU is paused at the very first instruction. The `virt` board with virtualization=on and no EL3 "
         "resets every CPU into EL2 (EL2h: EL2 on its own stack pointer, SP_EL2). CPU 0 is at 0x40000000, "
         "QEMU's few instructions of boot code that jump to the kernel Image (loaded at 0x40200000). CPU 1 "
         "is at PC 0 because it has not started at all: it is held in reset (powered off) until the kernel "
         "asks the firmware to start it with PSCI CPU_ON, which on `virt` is an SMC that QEMU answers "
         "itself. VBAR_EL2, where exceptions to EL2 go, is 0 on both.",
         ("rkvm cpus", "rkvm esr"),
         "the EL column (EL2h twice), CPU 1's PC 0 (held in reset), VBAR_EL2 0; and `rkvm esr`: ESR_EL2 still "
         "reads 0, no exception has been taken to EL2 yet."),
    Step("The kernel puts its hyp-stub in VBAR_EL2",
         "The kernel's first code (arch/arm64/kernel/head.S) runs at EL2 with the MMU off, so every address "
         "there is physical: `rkvm run-to boot-hyp-stub` puts a breakpoint on the physical address of "
         "init_el2's `msr vbar_el2, x0`. x0 is the PA of __hyp_stub_vectors, the kernel's tiny EL2 vector "
         "table that lets EL1 ask for a few things later (HVC_SET_VECTORS is one). GDB's own `stepi` shows "
         "`?? ()`: vmlinux's symbols are virtual addresses, and here the PC is physical.",
         ("rkvm run-to boot-hyp-stub", "stepi", "p/x $VBAR_EL2"),
         "x0 in the run-to line (the hyp-stub's PA), then VBAR_EL2 after one `stepi`: the same value."),
    Step("ERET: from EL2 down to EL1",
         "The kernel does not stay at EL2 (KVM is off in this lab). It writes SPSR_EL2 = 0x3c5 (EL1h, "
         "interrupts masked: INIT_PSTATE_EL1) and ELR_EL2 = where it wants to go on, then executes ERET: "
         "the CPU 'returns' to EL1 although it never came from there. An exception return is the only way "
         "down from EL2.",
         ("rkvm run-to boot-eret", "rkvm sysreg SPSR_EL2", "stepi", "rkvm cpus"),
         "SPSR_EL2 (EL1h) and ELR_EL2 (<primary_entry+...>) in the run-to line; after the `stepi`, CPU 0's EL "
         "column says EL1h and its PC is ELR_EL2. Its SP_EL2 is no longer 0: primary_entry set sp to "
         "early_init_stack while at EL2, and nothing will ever reset it."),
    Step("The kernel's own HVC: HVC_FINALISE_EL2",
         "Back at EL1 with its MMU on, the kernel calls its hyp-stub once: `hvc #0` with x0 = 3 "
         "(HVC_FINALISE_EL2), to move to VHE if the CPU can. `rkvm hvc catch` stops at VBAR_EL2 + 0x400, the "
         "'Lower EL using AArch64, Synchronous' slot every HVC from EL1 lands in; `rkvm step-el2` then walks "
         "the hyp-stub one instruction at a time to its ERET. A cortex-a57 has no VHE, so the answer is "
         "HVC_STUB_ERR (0xbadca11).",
         ("rkvm hvc catch", "continue", "rkvm hvc catch off", "rkvm step-el2"),
         "in the catch: x0 = 0x3 (HVC_FINALISE_EL2), the caller <finalise_el2+...>, ESR_EL2 0x5a000000 (EC 0x16, "
         "HVC #0); in the steps: `mrs x1, id_aa64mmfr1_el1` (the VHE check) and x0 = 0xbadca11 at the ERET."),
    Step("CPU 1 leaves reset",
         "CPU 0 now starts CPU 1 with PSCI CPU_ON: an SMC, which QEMU handles. CPU 1 begins at the physical "
         "address of secondary_entry, at EL2, MMU off, and goes through the same init_el2: the hyp-stub into "
         "its own VBAR_EL2 (a per-CPU register), then ERET to EL1.",
         ("rkvm run-to cpu-start", "rkvm cpus", "rkvm run-to boot-eret --cpu 1", "stepi", "rkvm cpus"),
         "CPU 1's PC leaves 0 for <secondary_entry>; CPU 0's PC is in <__arm_smccc_smc> (it just made the "
         "SMC). After the ERET both CPUs are at EL1 under the hyp-stub. CPU 1's SP_EL2 is still 0: "
         "secondary_entry never sets sp at EL2."),
    Step("rkvm.ko asks for new vectors: HVC_SET_VECTORS, one CPU",
         "The lab loads rkvm.ko at boot. It copies its EL2 stub into alloc_pages() memory and asks the "
         "hyp-stub, with `hvc #0`, x0 = 0 (HVC_SET_VECTORS), x1 = the stub's physical address, to change "
         "VBAR_EL2. That changes the calling CPU only.",
         ("rkvm run-to installed-cpu", "rkvm cpus"),
         "the VBAR_EL2 column: the CPU named in the run-to line points at 'the rkvm EL2 stub'; the other may "
         "still show the hyp-stub (or have caught up already: on_each_cpu() runs them at once)."),
    Step("Installed on every CPU",
         "on_each_cpu() repeats it on every CPU, then the module gives each CPU an EL2 stack "
         "(RKVM_HVC_SET_STACK: SP_EL2 can only be set from EL2). From now on an HVC from EL1 on any CPU lands "
         "at VBAR_EL2 + 0x400 in the rkvm stub.",
         ("rkvm run-to installed-all", "rkvm cpus", "rkvm vectors el2 --count 1"),
         "VBAR_EL2 and SP_EL2 on both CPUs, and slot +0x400 of the vector table: `b ... <rkvm_stub_el1_sync>`."),
    Step("A ping, caught on its way into EL2",
         f"The guest writes `ping 0x77` to rkvm.ko's debugfs file (typed into the guest's console by the "
         f"tour: `{PING}`); rkvm.ko issues `hvc #0x4b` with x0 = RKVM_HVC_PING, x1 = 0x77. The catch, "
         "filtered on the immediate, stops there with the syndrome in ESR_EL2.",
         ("rkvm hvc catch --imm 0x4b", "@type " + PING, "continue", "rkvm esr --explain", "rkvm hvc catch off"),
         "the catch: CPU, caller <rkvm_hvc+...>, x0 (RKVM_HVC_PING) and x1 = 0x77; the ESR decode: EC 0x16 "
         "HVC64, imm16 0x4b."),
    Step("Stepping the EL2 stub back to EL1",
         "Instruction by instruction through the rkvm stub: it reads ESR_EL2, finds the handler from x0, "
         "pushes on the SP_EL2 the module set, computes x0 and returns with ERET to the instruction after the "
         "hvc.",
         ("rkvm step-el2 --explain",),
         "`mrs x2, esr_el2`, the `br x3` into the call table, the `stp ... [sp, ...]` push (SP_EL2 in use), "
         "then the last line: EL2h -> EL1h via ERET, x0 = 0x77 ^ 0x524b564d."),
    Step("The vmalloc trap: virt_to_phys() of module memory",
         "virt_to_phys() is only arithmetic. For the module's own copy of the stub (module memory is mapped "
         "page by page, like vmalloc) it gives a wrong address: that is the bug mode=vmalloc reproduces. For "
         "the alloc_pages() copy (the linear map) it is right.",
         ("rkvm v2p rkvm_stub_blob --explain", "rkvm v2p rkvm_debug.stub_va"),
         "the two verdicts: 'not valid here' (formula vs walk differ) for the module address, 'agree' for the "
         "linear-map one."),
    *GUEST_STEPS,
    Step("Your turn: an HVC of your own",
         "Now you make the guest issue an HVC. Whatever you type goes to the guest's shell; "
         "`rkvm step-el2` lets the guest run until the next HVC enters EL2 and steps it. Writing `ping N` "
         "to /sys/kernel/debug/rkvm/hvc makes rkvm.ko do `hvc #0x4b` with x1 = N (`burst N` makes N of them); "
         "`cat` of the same file prints the last result.",
         ("@you", "rkvm step-el2 --timeout 30", "@console"),
         "x1 in the entry line (your N), the ERET's x0 = N ^ 0x524b564d, and the guest printing the same x0.",
         your_turn=True),
]


class _Ended(Exception):
    """The learner quit (q, or end of input at a prompt)."""


def _say(out, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def _clean(text: str) -> str:
    text = re.sub(r"\n*\[Switching to Thread[^\n]*\]", "", text)
    # a breakpoint in the stub, whose ELF has line info: GDB's source lines say nothing the PC does not
    text = re.sub(r": file \S+\.S, line \d+\.", ".", text)
    text = re.sub(r" at \S+\.S:\d+\n\d+\t[^\n]*", "", text)
    return text.rstrip()


def run_tour(all_steps: bool = False, inp=None, out=None) -> int:
    """Boot a lab session, walk the steps, end the session. 0 when every step ran (or the learner quit)."""
    inp = inp or sys.stdin
    out = out or sys.stdout
    interactive = not all_steps and _is_tty(inp)
    if not all_steps and not interactive:
        _say(out, "rkvm tour: stdin is not a terminal: every step follows without pausing (as with --all)")
    if session.current() is not None:
        raise RkvmError("a session is already running: the tour boots its own (end it with 'rkvm down')")
    sess = session.start("lab")
    tour = _Tour(sess, inp, out, interactive)
    try:
        with GdbMi() as mi:
            if "attached to" not in mi.startup_output:
                raise RkvmError("GDB did not attach: " + mi.startup_output.strip()[-200:])
            tour.mi = mi
            for n, step in enumerate(STEPS, 1):
                tour.step(n, step)
                if n < len(STEPS):
                    tour.pause(n)
        _say(out, "\nThe end: QEMU is stopped. Every command above works at the (gdb) prompt: start with "
                  "'rkvm gdb' (the lab, paused at reset) and 'rkvm run-to boot-hyp-stub'.")
        return 0
    except _Ended:
        _say(out, "rkvm tour: ended; QEMU is stopped")
        return 0
    finally:
        tour.close()
        session.stop(only=sess)


def _is_tty(inp) -> bool:
    try:
        return inp.isatty()
    except (AttributeError, ValueError):
        return False


class _Tour:
    def __init__(self, sess, inp, out, interactive: bool):
        self.sess, self.inp, self.out, self.interactive = sess, inp, out, interactive
        self.mi = None
        self.console = None
        self.typed_at = 0

    def step(self, n: int, step: Step) -> None:
        _say(self.out, f"\n=== Step {n} of {len(STEPS)}: {step.title} ===\n{_wrap(step.text)}\n")
        for cmd in step.commands:
            if cmd.startswith("@type "):
                self._type_when_ready(cmd[6:])
            elif cmd.startswith("@send "):
                self._send_now(cmd[6:])
            elif cmd == "@you":
                self._your_line()
            elif cmd == "@console":
                self._show_console()
            else:
                self._run(n, cmd)
        _say(self.out, "\n" + _wrap("Look at: " + step.look))

    def _run(self, n: int, cmd: str) -> None:
        _say(self.out, f"(gdb) {cmd}")
        res = self.mi.console(cmd, timeout=120)
        text = _clean(res.output)
        if text:
            _say(self.out, text)
        if not res.ok:
            if cmd.startswith("rkvm step-el2 --timeout"):   # the learner's line made no HVC: say so, go on
                _say(self.out, res.error)
                return
            raise RkvmError(f"step {n}: {cmd}: {res.error}")

    def pause(self, n: int) -> None:
        if not self.interactive:
            return
        self.out.write(f"\n-- Enter: step {n + 1} of {len(STEPS)} · q: quit -- ")
        self.out.flush()
        line = self.inp.readline()
        if not line or line.strip().lower() in ("q", "quit", "exit"):
            raise _Ended()

    def _console(self):
        if self.console is None:
            self.console = session.SerialConsole(self.sess)
        return self.console

    def _type_when_ready(self, line: str) -> None:
        """Type `line` once the guest's shell is up; the guest runs meanwhile, in the next command."""
        console = self._console()
        out = self.out

        def go():
            try:
                log = session.serial_wait(self.sess, "RKVM-LAB: shell ready", timeout=90)
                start = log.index("RKVM-LAB: shell ready")
                session.serial_wait(self.sess, "/ # ", timeout=30, start=start)
                time.sleep(0.2)
                console.send(line + "\n")
            except (RkvmError, OSError) as e:
                _say(out, f"rkvm tour: could not type into the guest: {e}")
        threading.Thread(target=go, daemon=True).start()

    def _send_now(self, line: str) -> None:
        """Type `line` into the guest's shell now (it runs when the next command resumes the guest)."""
        _say(self.out, f"guest # {line}")
        self.typed_at = Path(self.sess.serial_log).stat().st_size
        self._console().send(line + "\n")

    def _your_line(self) -> None:
        if self.interactive:
            self.out.write(f"Type a command for the guest's shell (Enter for: {YOUR_HVC})\nguest # ")
            self.out.flush()
            line = self.inp.readline()
            if not line:
                raise _Ended()
            line = line.strip() or YOUR_HVC
        else:
            line = YOUR_HVC
            _say(self.out, f"(typing for you, as in --all:) guest # {line}")
        self.typed_at = Path(self.sess.serial_log).stat().st_size
        self._console().send(line + "\n")

    def _show_console(self) -> None:
        """Let the guest run a moment so it finishes the typed command, and show what it printed."""
        self.mi.run_for(1.5)
        data = Path(self.sess.serial_log).read_bytes()[self.typed_at:].decode(errors="replace")
        data = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data)   # the shell's terminal queries
        lines = [x.rstrip("\r") for x in data.splitlines() if x.strip() and x.strip() != "/ #"]
        _say(self.out, "\nThe guest's console meanwhile:")
        for x in lines[-8:]:
            _say(self.out, "  | " + x)

    def close(self) -> None:
        if self.console is not None:
            self.console.close()

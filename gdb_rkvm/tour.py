"""`rkvm tour`: a guided, non-interactive walk through the EL transitions on the live lab.

Every step runs real rkvm commands through GDB/MI and says what they show.
"""

import sys
import time

from . import session
from .errors import RkvmError
from .target.mi import GdbMi

STEPS = [
    ("Reset: every CPU starts at EL2",
     "QEMU was started paused at the first instruction. With virtualization=on the CPUs start at EL2 "
     "(EL2h): the kernel's boot code runs there first. VBAR_EL2 is still 0.",
     ["rkvm cpus"]),
    ("The kernel runs at EL1, its hyp-stub holds EL2",
     "Early in boot each CPU installs the kernel's hyp-stub (__hyp_stub_vectors) in VBAR_EL2 and drops to "
     "EL1 with ERET. Here the kernel is about to load rkvm.ko (a breakpoint on do_init_module): every "
     "VBAR_EL2 is the hyp-stub.",
     ["tbreak do_init_module", "continue", "rkvm cpus"]),
    ("HVC_SET_VECTORS on one CPU",
     "rkvm.ko copies its stub into alloc_pages() memory and asks the hyp-stub, with `hvc #0`, "
     "x0 = 0 (HVC_SET_VECTORS), x1 = the stub's physical address, to change VBAR_EL2. "
     "VBAR_EL2 is per CPU: until every CPU has done it, they disagree (here the other CPU may "
     "already have caught up: on_each_cpu() runs them at once).",
     ["rkvm run-to installed-cpu", "rkvm cpus"]),
    ("Installed everywhere",
     "on_each_cpu() repeats it on every CPU. Now an HVC from EL1 on any CPU lands at VBAR_EL2 + 0x400 "
     "(Lower EL using AArch64, Synchronous), in the rkvm stub.",
     ["rkvm run-to installed-all", "rkvm cpus", "rkvm vectors el2 --count 1"]),
    ("A ping, caught on its way into EL2",
     "The guest writes `ping 0x77` to /sys/kernel/debug/rkvm/hvc; rkvm.ko issues `hvc #0x4b` with "
     "x0 = RKVM_HVC_PING, x1 = 0x77. The catch stops at the stub's vector with the syndrome in ESR_EL2.",
     ["rkvm hvc catch --imm 0x4b", "@type echo ping 0x77 > /sys/kernel/debug/rkvm/hvc", "continue",
      "rkvm esr --explain", "rkvm hvc catch off"]),
    ("Stepping the EL2 stub back to EL1",
     "Instruction by instruction through the stub: it reads ESR_EL2, picks the handler, pushes on the "
     "SP_EL2 the module set, computes x0 and returns with ERET to the instruction after the hvc.",
     ["rkvm step-el2 --explain"]),
    ("The vmalloc trap: virt_to_phys() of module memory",
     "virt_to_phys() is only arithmetic. For the module's own copy of the stub (module memory is "
     "vmalloc-style) it gives a wrong address: this is the bug that mode=vmalloc reproduces. For the "
     "alloc_pages() copy (linear map) it is right.",
     ["rkvm v2p rkvm_stub_blob --explain", "rkvm v2p rkvm_debug.stub_va"]),
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_tour(out=None) -> int:
    """Boot a lab session, walk the steps, end the session. 0 when every step ran."""
    started = session.current() is None
    if not started:
        raise RkvmError("a session is already running: the tour boots its own (end it with 'rkvm down')")
    sess = session.start("lab")
    console = None
    try:
        with GdbMi() as mi:
            if "attached to" not in mi.startup_output:
                raise RkvmError("GDB did not attach: " + mi.startup_output.strip()[-200:])
            for n, (title, text, commands) in enumerate(STEPS, 1):
                _say(f"\n=== {n}. {title} ===\n{text}\n")
                for cmd in commands:
                    if cmd.startswith("@type "):
                        console = console or session.SerialConsole(sess)
                        _pending_type(sess, console, cmd[6:])
                        continue
                    _say(f"(gdb) {cmd}")
                    res = mi.console(cmd, timeout=120)
                    if res.output.strip():
                        _say(res.output.rstrip())
                    if not res.ok:
                        raise RkvmError(f"step {n}: {cmd}: {res.error}")
        _say("\nThe end: QEMU is stopped. Try it yourself with 'rkvm gdb'.")
        return 0
    finally:
        if console is not None:
            console.close()
        session.stop(only=sess)


def _pending_type(sess, console, line: str) -> None:
    """Type `line` once the shell is up; the guest runs meanwhile through the next `continue`."""
    import threading

    def go():
        try:
            session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
            log = open(sess.serial_log, "rb").read().decode(errors="replace")
            start = log.index("RKVM-LAB: shell ready")
            session.serial_wait(sess, "/ # ", timeout=30, start=start)
            time.sleep(0.2)
            console.send(line + "\n")
        except RkvmError as e:
            print(f"rkvm tour: {e}", file=sys.stderr)
    threading.Thread(target=go, daemon=True).start()

"""Capture the lab output shown in docs/concepts.md's guest chapter ("The guest world").

Usage: flock /tmp/rkvm-qemu.lock build/venv/bin/python docs/capture_guest.py OUT.md
One GDB session on the good lab (the guest entered, its first stage-2 exit, the return to the host,
a trace of exits), then each guest-world mode booted without GDB and its guest run from the shell.
Writes each block as it would appear in the chapter: the command, then its output.
"""

import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm.host.mi import GdbMi  # noqa: E402
from gdb_rkvm.qemu import qmp, session  # noqa: E402

GUEST = "/sys/kernel/debug/rkvm/guest"
RUN = f'echo "run 100" > {GUEST}; cat {GUEST}'
PY = "python from gdb_rkvm.live import gdb_target as t; "
WALK = (PY + "from gdb_rkvm.arch.two_stage import Stage2Regs, walk_stage2; "
        "r = Stage2Regs(t.read_register('VTTBR_EL2'), t.read_register('VTCR_EL2')); "
        "[print(w.ipa and hex(w.ipa), '->', w.pa and hex(w.pa), w.perms, (w.fault.describe() if w.fault else ''), "
        "*[s.describe() for s in w.steps], sep='\\n  ') for w in (walk_stage2(a, r, t.read_physical) "
        "for a in (0x80000000, 0x09000000))]")
AUTOPSY = (PY + "from gdb_rkvm.arch.stage2_fault import autopsy; "
           "f = autopsy(t.read_register('ESR_EL2'), t.read_register('FAR_EL2'), t.read_register('HPFAR_EL2'), "
           "[(0x80000000, 0x10000)]); print(f.what_the_guest_did()); print(f.fault_text()); "
           "print(f.action.value + ':', f.advice)")
EXIT_RECORD = (PY + "from gdb_rkvm.live import world; w = world.world(t.cpu_of(gdb.selected_thread())); "
               "v = world.read_vcpu(w.vcpu_pa); e = v.exit; "
               "print(f'vCPU at PA {w.vcpu_pa:#x}: exit {e.count}, reason {e.reason}, ESR_EL2 {e.esr:#x}, "
               "FAR_EL2 {e.far:#x}, HPFAR_EL2 {e.hpfar:#x}, IPA {e.ipa:#x}; guest PC {v.pc:#x}')")

GDB_STEPS = [
    ("@type", RUN), "rkvm run-to guest-enter", "rkvm sysreg HCR_EL2",
    "hbreak *0x80000000", "continue", "delete", "rkvm el", "rkvm sysreg HCR_EL2", "rkvm sysreg VTTBR_EL2",
    "rkvm sysreg VTCR_EL2", "x/3i $pc",
    "monitor xp /2gx 0x0", WALK,
    "rkvm exit catch --reason dabt", "continue", "rkvm exit catch --off", "rkvm el",
    "rkvm esr --explain", "p/x $FAR_EL2",
    "rkvm sysreg HPFAR_EL2", "p/x $ELR_EL2", AUTOPSY, "monitor gva2gpa 0x49000000",
    "rkvm run-to guest-exit", "rkvm sysreg HCR_EL2", "rkvm el", EXIT_RECORD,
    "rkvm trace-el --class dabt,hvc,wfx,irq --count 8",
]
MODES = ["s2-hole", "vtcr-mismatch", "s2-vmalloc", "host-clobber"]


def clean(text: str) -> str:
    return re.sub(r"\n*\[Switching to Thread[^\n]*\]", "", text).rstrip()


def gdb_part(blocks: list) -> None:
    sess = session.start("lab")
    try:
        with GdbMi() as mi:
            mi.console("rkvm run-to installed-all", timeout=120)
            mi.console("detach")
        session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=90)
        time.sleep(1.0)
        console = session.SerialConsole(sess)
        typed_at = 0
        with GdbMi() as mi:
            for step in GDB_STEPS:
                if isinstance(step, tuple):
                    typed_at = Path(sess.serial_log).stat().st_size
                    threading.Timer(1.0, console.send, args=(step[1] + "\n",)).start()
                    blocks.append(("guest # " + step[1], ""))
                    continue
                if step == "monitor xp /2gx 0x0":
                    vttbr = int(mi.console("p/x $VTTBR_EL2").output.split("=")[1], 16)
                    step = f"monitor xp /2gx {vttbr & ((1 << 48) - 2):#x}"
                res = mi.console(step, timeout=120)
                text = clean(res.output) + ("" if res.ok else "\n" + str(res.error))
                blocks.append((step, text))
            mi.run_for(2.0)
        log = Path(sess.serial_log).read_bytes()[typed_at:].decode(errors="replace")
        blocks.append(("(the guest's console afterwards)", log.replace("\r", "")))
        console.close()
    finally:
        session.stop(only=sess)


def mode_part(blocks: list, mode: str) -> None:
    sess = session.start("lab", mode=mode)
    try:
        qmp.call(sess.qmp_socket, "cont")
        log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=90)
        session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))
        console = session.SerialConsole(sess)
        start = Path(sess.serial_log).stat().st_size
        line = RUN.replace("run 100", "run 30")
        console.send(line + "; echo MARK-$((1 + 1))\n")
        try:
            session.serial_wait(sess, "MARK-2\r\n", timeout=20, start=start)
        except Exception as e:    # host-clobber: the host never comes back
            print(f"{mode}: {e}", file=sys.stderr)
        out = Path(sess.serial_log).read_bytes()[start:].decode(errors="replace").replace("\r", "")
        blocks.append((f"[rkvm.mode={mode}] guest # {line}", out))
        console.close()
    finally:
        session.stop(only=sess)


def main() -> int:
    blocks: list = []
    out = Path(sys.argv[1])
    try:
        if "--modes-only" not in sys.argv:
            gdb_part(blocks)
        for mode in MODES:
            mode_part(blocks, mode)
    finally:
        out.write_text("".join(f"```\n(gdb) {cmd}\n{text}\n```\n\n" for cmd, text in blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())

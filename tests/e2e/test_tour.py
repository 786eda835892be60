"""`rkvm tour` end to end: every step without a terminal, and one step at a time on one."""

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from gdb_rkvm.paths import REPO
from gdb_rkvm.host.tour import STEPS
from gdb_rkvm.host.tour_guest import DABT_EXIT, GUEST_STEPS, UART_VA
from tests.conftest import no_new_qemu

pytestmark = pytest.mark.lab


def test_every_step_names_what_to_look_at():
    assert len(STEPS) >= 10
    for step in STEPS:
        assert step.title and step.text and step.commands and step.look.strip(), step.title
    assert STEPS[-1].your_turn and "@you" in STEPS[-1].commands   # it ends with the learner's own HVC
    # the guest part, in order, just before the learner's turn: in, through the switch, an exit, out
    assert STEPS[-1 - len(GUEST_STEPS):-1] == GUEST_STEPS
    cmds = [c for step in GUEST_STEPS for c in step.commands]
    assert cmds.index("rkvm run-to guest-enter") < cmds.index("thbreak *0x80000000") < cmds.index("rkvm el") \
        < cmds.index(DABT_EXIT) < cmds.index("rkvm exit catch --off") < cmds.index("rkvm fault --explain") \
        < cmds.index(f"rkvm walk --guest {UART_VA:#x}") < cmds.index("rkvm run-to guest-exit") \
        < cmds.index("rkvm vcpu")
    assert not [c for c in cmds if c.startswith("python")]     # every view is a command of its own


def test_tour_without_a_terminal_shows_every_step(lab_built, session_dir):
    t0 = time.monotonic()
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "tour"], cwd=REPO, capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    out = res.stdout
    assert out.startswith("rkvm tour: stdin is not a terminal: every step follows without pausing")
    assert [int(n) for n in re.findall(r"=== Step (\d+) of \d+", out)] == list(range(1, len(STEPS) + 1))
    assert out.count("\nLook at: ") == len(STEPS)
    assert "-- Enter" not in out
    for marker in ("held in reset", "rkvm: boot-hyp-stub on cpu 0:", "<__hyp_stub_vectors>",
                   "rkvm: boot-eret on cpu 0:", "in EL1h (SPSR_EL2 0x3c5)", "x0=0x3 (HVC_FINALISE_EL2)",
                   "x0 = 0xbadca11", "rkvm: cpu-start on cpu 1:", "<secondary_entry>", "rkvm: installed-cpu on cpu",
                   "HVC #0x4b from EL1h", "virt_to_phys() is not valid here: this is a module address",
                   "(typing for you, as in --all:) guest # echo ping 0x2a", "The end"):
        assert marker in out, marker
    assert out.count("EL2h -> EL1h via ERET") >= 3            # the hyp-stub, the ping, the learner's HVC
    # the learner's ping: the stub's result, and the guest printing the same x0
    x0 = 0x2A ^ 0x524B564D
    assert f"x0 = {x0:#x}" in out and f"| x0={x0:#x}" in out
    assert not re.search(r"^\d+\t|\.S:\d+", out, re.M)       # no GDB source-line chatter from step-el2
    _the_guest_part(out)
    assert time.monotonic() - t0 < 240


def _the_guest_part(out: str) -> None:
    """Into the guest and back: the world switch seen from both sides, one stage-2 exit decoded."""
    guest = out[out.index("A guest: the host asks to run it"):out.index("Your turn: an HVC of your own")]
    cpu = re.search(r"guest-enter on cpu (\d)", guest)
    marks = ['guest # echo "run 1000" > /sys/kernel/debug/rkvm/guest', "rkvm: guest-enter on cpu",
             "VM[0] = 0x0  no stage 2", "0x0000000080000000 in ?? ()",
             "guest VMID 1  EL1h  0x80000000 ", "VM[0] = 0x1  stage 2 translation on",
             "VMID[63:48] = 0x1", "T0SZ[5:0] = 0x20", "IPA 0x80000000 through stage 2:",
             f"CPU {cpu.group(1) if cpu else '?'}: EL1h, PC 0x80000000 - in the guest (VMID 1",
             "EL1 register    guest (live)  host (saved by the stub)",
             "rkvm: catching guest exits (exit reason dabt)",
             f"rkvm: CPU {cpu.group(1) if cpu else '?'}: guest exit dabt: Translation fault, level 1 on data write",
             "FAR_EL2 0x49000000, HPFAR_EL2 0x90000 -> IPA 0x9000000", "rkvm: exit catch off",
             "EC 0x24 DABT_LOW: Translation fault, level 1 on data write", "ISV[24] = 0x1",
             "the guest    VA 0x49000000 -> IPA 0x9000000: 1-byte write of w1",
             "not guest RAM: a device (MMIO) the VMM emulates", "then ELR_EL2 += 4", "ISS.ISV = 1",
             "guest VA 0x800000", "guest VA 0x49000000 (VMID 1): stage 1 via TTBR0_EL1",
             "page -> IPA 0x9000000", "no PA: stage 2 translation fault at level 1",
             "rkvm: guest-exit on cpu", "(saved at its last exit)", "last exit (#",
             "| rkvm-guest: hello from the rkvm guest", "| rkvm-guest: done (0x0)"]
    at = [guest.find(m) for m in marks]
    assert all(i >= 0 for i in at), [m for m, i in zip(marks, at, strict=True) if i < 0]
    assert at == sorted(at), "the guest part out of order"
    assert re.search(r"rkvm: guest-exit on cpu \d: stub at PA 0x[0-9a-f]+, arg 0x1\n", guest)   # RKVM_EXIT_SYNC
    # the host's EL1 registers wait in the save area while the guest's are live: the kernel's TTBR1_EL1,
    # and SP_EL1 read live for the guest (not '-')
    assert re.search(r"TTBR1_EL1\s+0x0\s+0x[0-9a-f]{6,}", guest)
    assert re.search(r"\nSP_EL1\s+0x0\s+0xffff[0-9a-f]+", guest)
    assert guest.count("VM[0] = 0x0  no stage 2") == 2                  # before the entry, after the exit
    # the guest's PC through both stages ends at a PA in its RAM; the vCPU's last exit is the UART's abort
    assert re.search(r"PA 0x[0-9a-f]+  permissions: stage 1 rwx ---, stage 2 rwx rwx", guest)
    assert re.search(r"last exit \(#\d+\): dabt +EC 0x24[^\n]*\n  ESR_EL2 0x93010045", guest)
    assert "1    guest VMID 1" in guest or "0    guest VMID 1" in guest
    # VTTBR_EL2.BADDR read as the table's PA (the walk's start table); no ELF marker named beside a 0
    baddr = re.search(r"BADDR=PA (0x[0-9a-f]+), VMID=0x1", guest)
    assert baddr and f"S2 L1  table {baddr.group(1)}[2]" in guest
    assert "<_note_" not in guest


def _read_until(fd: int, text: str, timeout: float, seen: list) -> str:
    deadline = time.monotonic() + timeout
    while text not in "".join(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not shown within {timeout} s: {''.join(seen)[-1500:]}"
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                seen.append(os.read(fd, 65536).decode(errors="replace"))
            except OSError:
                break
    return "".join(seen)


def test_tour_on_a_terminal_waits_for_enter_and_quits_on_q(lab_built, session_dir):
    master, slave = pty.openpty()
    seen: list = []
    with no_new_qemu():
        proc = subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", "tour"], cwd=REPO, stdin=slave,
                                stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        try:
            out = _read_until(master, "-- Enter: step 2 of", 120, seen)
            assert "Step 1 of" in out and "Look at: " in out and "not a terminal" not in out
            time.sleep(1.0)
            out = "".join(seen) + (os.read(master, 65536).decode(errors="replace")
                                   if select.select([master], [], [], 0.2)[0] else "")
            assert "Step 2 of" not in out                          # it waits for Enter
            os.write(master, b"\n")
            out = _read_until(master, "-- Enter: step 3 of", 120, seen)
            assert "Step 2 of" in out and "rkvm: boot-hyp-stub on cpu 0" in out
            os.write(master, b"q\n")
            assert proc.wait(timeout=60) == 0
            out = _read_until(master, "QEMU is stopped", 10, seen)
            assert "rkvm tour: ended" in out and "Step 3 of" not in out
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            os.close(master)

"""The lab's guest end to end: rkvm.ko runs it through RKVM_HVC_VCPU_RUN from debugfs, it prints through the
emulated UART, and each guest-world mode shows its symptom. No GDB: QEMU is resumed through QMP and the
lab's shell is typed into, as a user would."""

import re

import pytest

from gdb_rkvm.model import stub_abi
from gdb_rkvm.qemu import qmp, session
from gdb_rkvm.errors import RkvmError

pytestmark = pytest.mark.lab
GUEST = "/sys/kernel/debug/rkvm/guest"
RAM_IPA = stub_abi.value("RKVM_GUEST_RAM_IPA")
RAM_SIZE = stub_abi.value("RKVM_GUEST_RAM_SIZE")
EC_DABT_LOW, EC_IABT_LOW = 0x24, 0x20


class Shell:
    """The lab's serial shell: type a line, wait for a marker the shell computes (so the echoed command
    line itself never matches), return what the guest printed since."""

    def __init__(self, sess):
        self.sess = sess
        self.console = session.SerialConsole(sess)
        self.marks = 0

    def run(self, line: str, timeout: float = 60) -> str:
        self.marks += 1
        start = len(open(self.sess.serial_log, "rb").read())
        self.console.send(f"{line}; echo MARK-$((1000 + {self.marks}))\n")
        return session.serial_wait(self.sess, f"MARK-{1000 + self.marks}\r\n", timeout=timeout, start=start)


@pytest.fixture
def lab_shell(start_lab):
    consoles = []

    def boot(mode=None):
        sess = start_lab(mode=mode)
        qmp.call(sess.qmp_socket, "cont")
        log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=90)
        assert "RKVM-LAB: module loaded" in log and "rkvm: guest RAM at PA" in log
        session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))
        shell = Shell(sess)
        consoles.append(shell.console)
        return shell

    yield boot
    for c in consoles:
        c.close()


def state(text: str) -> dict[str, str]:
    """`cat /sys/kernel/debug/rkvm/guest`: one `key value` per line."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z0-9_]+) (\S.*?)\r?", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def num(s: dict, key: str) -> int:
    return int(s[key], 0)


def test_guest_runs_prints_and_the_host_keeps_running(lab_shell):
    shell = lab_shell()
    out = shell.run(f'echo "run 100" > {GUEST}; cat {GUEST}')
    assert "rkvm-guest: hello from the rkvm guest: stage 1 on, UART at VA 0x49000000" in out
    assert "rkvm-guest: hypercall print 0xabcd1234" in out          # x1 of its first hypercall
    assert "rkvm-guest: hypercall print 0x0" in out                 # what its UART read (FR) returned
    assert "rkvm-guest: guest: bye" in out and "rkvm-guest: done (0x0)" in out
    s = state(out)
    assert s["state"] == "done" and num(s, "exits_hvc") == 3 and num(s, "exits_wfx") == 1
    # one store per character of the two lines, one UART read
    assert num(s, "exits_dabt") == num(s, "uart_chars") + 1 == len("hello from the rkvm guest: stage 1 on, UART "
                                                                  "at VA 0x49000000\n") + len("guest: bye\n") + 1
    assert num(s, "exits") == sum(num(s, f"exits_{k}") for k in ("hvc", "dabt", "iabt", "wfx", "irq", "other"))
    assert num(s, "guest_ram_ipa") == RAM_IPA and num(s, "s2_start_level") == 1 and num(s, "s2_ipa_bits") == 32
    assert num(s, "vttbr") >> 48 == 1 and num(s, "hcr") & 1 == 1       # VMID 1, HCR_EL2.VM
    # the host survives the world switches: its shell answers, and a reset guest runs again
    again = shell.run(f'echo reset > {GUEST}; echo "run 100" > {GUEST}; cat {GUEST}')
    assert again.count("rkvm-guest: hello from the rkvm guest") == 1 and state(again)["state"] == "done"
    assert "MARK-" in shell.run("echo alive")


def test_s2_hole_faults_until_the_bound(lab_shell):
    shell = lab_shell("s2-hole")
    out = shell.run(f'echo "run 50" > {GUEST}; cat {GUEST}')
    s = state(out)
    assert "rkvm: guest ran 50 exits (the bound)" in out and "hello from" not in out
    assert num(s, "exits") == 50 and num(s, "exits_dabt") + num(s, "exits_irq") == 50
    assert num(s, "last_esr") >> 26 == EC_DABT_LOW and num(s, "last_esr") & 0x3F == 0x07   # translation, level 3
    assert RAM_IPA + RAM_SIZE - 0x1000 <= num(s, "last_ipa") < RAM_IPA + RAM_SIZE          # the stack page
    assert s["state"] == "runnable" and "MARK-" in shell.run("echo alive")


def test_vtcr_mismatch_faults_on_the_first_fetch(lab_shell):
    shell = lab_shell("vtcr-mismatch")
    s = state(shell.run(f'echo "run 30" > {GUEST}; cat {GUEST}'))
    assert num(s, "vtcr") & 0x3F == (num(s, "vtcr_tables") & 0x3F) + 1 == 33   # T0SZ: one more than the tables
    assert num(s, "exits") == 30 and num(s, "exits_iabt") + num(s, "exits_irq") == 30
    assert num(s, "last_esr") >> 26 == EC_IABT_LOW and num(s, "last_ipa") == RAM_IPA == num(s, "pc")


def test_s2_vmalloc_tables_are_not_where_vttbr_points(lab_shell):
    shell = lab_shell("s2-vmalloc")
    out = shell.run(f'echo "run 30" > {GUEST}; cat {GUEST}')
    s = state(out)
    assert "hello from" not in out and num(s, "exits") == 30 and num(s, "exits_dabt") == 0
    assert num(s, "last_esr") >> 26 == EC_IABT_LOW and num(s, "last_ipa") == RAM_IPA


def test_host_clobber_kills_the_host_after_the_first_exit(lab_shell):
    shell = lab_shell("host-clobber")
    with pytest.raises(RkvmError):   # the shell never comes back: the wait is bounded
        shell.run(f'echo "run 100" > {GUEST}', timeout=15)
    log = open(shell.sess.serial_log, errors="replace").read()
    assert "rkvm-guest:" not in log   # it died on the guest's first exit (its first UART store)
    with pytest.raises(RkvmError):
        shell.run("echo alive", timeout=5)

"""Shared fixtures. End-to-end tests boot the real lab in QEMU; they fail (never skip) when it is missing."""

import contextlib
import os
import subprocess
import sys
import time

import pytest

from gdb_rkvm.qemu import qemu_process, session
from gdb_rkvm.paths import REPO, build_dir
from gdb_rkvm.host.mi import GdbMi

# Every process this test run starts (QEMU, GDB, rkvm) inherits this mark: leftovers are found by it,
# not by name, so other users' QEMU and GDB on the machine are never mistaken for ours.
RUN_MARK = f"RKVM_TEST_RUN={os.getpid()}-{int(time.time() * 1000)}"
os.environ["RKVM_TEST_RUN"] = RUN_MARK.split("=", 1)[1]

LAB_FILES = ["kernel/Image", "kernel/vmlinux", "initramfs.cpio.gz", "module/rkvm.ko", "othervisor/othervisor.ko",
             "kernel-kaslr/Image", "kernel-kaslr/vmlinux", "initramfs-kaslr.cpio.gz", "module-kaslr/rkvm.ko"]


def leftover_processes() -> dict[int, str]:
    """QEMU and GDB processes started by this test run (they carry RUN_MARK) that are still running."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            if not any(b"qemu-system" in w or w.endswith(b"gdb-multiarch") or w.endswith(b"/gdb") for w in cmd[:1]):
                continue
            if RUN_MARK.encode() in open(f"/proc/{entry}/environ", "rb").read().split(b"\0") \
                    and qemu_process.alive(int(entry)):
                found[int(entry)] = b" ".join(cmd[:3]).decode(errors="replace")
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_qemu_or_gdb_left_by_the_suite():
    """The whole run leaves no QEMU or GDB behind (checked by the suite itself, at its end)."""
    yield
    left = {}
    for _ in range(50):   # a process being ended right now gets 5 s
        left = leftover_processes()
        if not left:
            return
        time.sleep(0.1)
    for pid in left:
        qemu_process.terminate(pid)
    pytest.fail(f"the test run left QEMU/GDB processes running (now ended): {left}")


@pytest.fixture(scope="session")
def lab_built():
    missing = [f for f in LAB_FILES if not (build_dir() / f).is_file()]
    if missing:
        pytest.fail(f"lab not built ({', '.join(missing)} missing): run 'make lab lab-kaslr' (make test does)")
    if not (REPO / "stub/build/el2_stub.elf").is_file():
        pytest.fail("stub not built: run 'make stub'")
    return build_dir()


@pytest.fixture
def session_dir(tmp_path, monkeypatch):
    """A private session directory, seen by rkvm commands and by GDB started from this test."""
    d = tmp_path / "session"
    monkeypatch.setenv("RKVM_SESSION_DIR", str(d))
    return d


@pytest.fixture
def start_lab(lab_built, session_dir):
    """Factory: start_lab(mode=..., append=..., smp=...) -> Session, always stopped at teardown."""
    started = []

    def start(profile="lab", **kwargs):
        sess = session.start(profile, directory=session_dir, **kwargs)
        started.append(sess)
        return sess

    yield start
    for sess in started:
        session.stop(session_dir, only=sess)
        if sess.identity_problem() is None:   # never a pid reused by another process
            qemu_process.terminate(sess.pid)
        assert sess.identity_problem() is not None, "QEMU outlived its test"


@pytest.fixture
def gdb_on(lab_built):
    """Factory: gdb_on(session) -> GdbMi attached with rkvm.py; closed at teardown."""
    opened = []

    def attach(_sess):
        mi = GdbMi()
        opened.append(mi)
        assert "attached to " in mi.startup_output, mi.startup_output
        return mi

    yield attach
    for mi in opened:
        mi.close()


def run_cli(*args, timeout=60, env=None):
    """Run `python -m gdb_rkvm.host.cli ARGS` as a user would; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@contextlib.contextmanager
def no_new_qemu():
    """Assert that a block leaves no QEMU process behind that was not there before."""
    before = set(_qemu_pids())
    yield
    leftover = set(_qemu_pids()) - before
    for pid in leftover:
        qemu_process.terminate(pid)
    assert not leftover, f"QEMU left running: {leftover}"


def _qemu_pids():
    """This run's QEMU processes only: others (another user's, another test run's) are not ours."""
    return [pid for pid, cmd in leftover_processes().items() if "qemu-system" in cmd]


def js(out: str):
    """The JSON object a command printed (with --json), ignoring GDB's and rkvm's own lines around it
    (a notice may hold a brace): the object starts at a line that is just "{"."""
    import json
    end = out.rindex("}") + 1
    starts = [i for i in range(len(out)) if out.startswith("{\n", i) and (i == 0 or out[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            return json.loads(out[start:end])
        except ValueError:
            continue
    return json.loads(out[out.index("{"):end])


@pytest.fixture
def installed_lab(start_lab, gdb_on):
    """Factory: a lab booted to rkvm.ko's installed-all event, GDB attached and stopped there.
    Returns (session, GdbMi, the event)."""
    def boot(**kwargs):
        sess = start_lab(**kwargs)
        mi = gdb_on(sess)
        event = js(mi.check("rkvm run-to installed-all --json", timeout=90))
        return sess, mi, event
    return boot

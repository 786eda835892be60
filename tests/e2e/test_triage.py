"""`rkvm triage` end to end: each classic bug named on the right CPUs; bad input exits 2 cleanly."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from gdb_rkvm.paths import REPO
from tests.conftest import no_new_qemu

pytestmark = pytest.mark.lab


def triage(tmp_path, *args, timeout=240):
    out = tmp_path / "out"
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", str(out), *args], cwd=REPO,
                             capture_output=True, text=True, timeout=timeout)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return res, report, out


def codes(report):
    return {f["code"]: f for f in report["findings"]}


def test_good_mode_is_healthy(lab_built, tmp_path):
    res, r, out = triage(tmp_path, "--mode", "good")
    assert res.returncode == 0, res.stdout + res.stderr
    assert r["status"] == "healthy" and r["findings"] == [] and not r["partial"]
    assert "boot finished" in r["stop"]
    assert r["kernel_log_source"] == "the kernel's log buffer (lx-dmesg)"
    assert any("rkvm: installed on 2 CPU(s)" in line for line in r["kernel_log"])
    assert all(c["summary"]["vbar_el2_kind"] == "rkvm-stub" for c in r["snapshot"]["cpus"])
    assert (out / "report.md").read_text().startswith("# rkvm triage report")
    assert not list(out.glob(".*.tmp"))   # written atomically: no temporary left


def test_vmalloc_mode_names_virt_to_phys_and_the_hang(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--mode", "vmalloc")
    assert res.returncode == 1, res.stdout + res.stderr
    found = codes(r)
    v2p = found["vbar-el2-from-virt-to-phys"]
    assert v2p["cpus"] == [0, 1]
    assert "rkvm_stub_blob" in " ".join(v2p["evidence"])
    assert "el2-parked" in found or "vbar-el2-not-ram" in found
    parked = [f for f in r["findings"] if f["code"] == "el2-parked"]
    assert sorted(c for f in parked for c in f["cpus"]) == [0, 1]
    assert "vbar-el2-from-virt-to-phys" in res.stdout


def test_one_cpu_mode_names_the_mismatch(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--mode", "one-cpu")
    assert res.returncode == 1
    m = codes(r)["vbar-el2-mismatch"]
    assert m["cpus"] == [0, 1] and len(m["evidence"]) == 2


def test_nostack_mode_names_the_unset_stack(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--mode", "nostack")
    assert res.returncode == 1
    f = [x for x in r["findings"] if x["code"] == "el2-stack-unset"]
    assert sorted(c for x in f for c in x["cpus"]) == [0, 1]


def test_sysrq_panic_is_named_with_its_message(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--run", "echo c > /proc/sysrq-trigger")
    assert res.returncode == 1, res.stdout + res.stderr
    p = codes(r)["kernel-panic"]
    assert p["summary"] == "kernel panic: sysrq triggered crash"
    assert any("sysrq" in e for e in p["evidence"])   # the panicking CPU's backtrace names sysrq's handler


@pytest.mark.parametrize("args,reason", [
    (["--set", "kernel=/nonexistent/Image"], "kernel not found: /nonexistent/Image"),
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--until", "sometime"], "--until sometime: expected one of"),
])
def test_bad_input_exits_2_with_one_line(lab_built, tmp_path, args, reason):
    res, r, _ = triage(tmp_path, *args)
    assert res.returncode == 2
    assert r["status"] == "failed" and reason in r["reason"]
    assert res.stderr.strip().count("\n") == 0 and reason in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_unreachable_gdbstub_exits_2(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--attach", "127.0.0.1:1")   # nothing listens there
    assert res.returncode == 2
    assert "cannot connect to QEMU's gdbstub at 127.0.0.1:1" in r["reason"], r["reason"]
    res, r, _ = triage(tmp_path, "--set", "vmlinux=/nonexistent/vmlinux")
    assert res.returncode == 2 and r["reason"].startswith("vmlinux not found: /nonexistent/vmlinux")


def test_attach_to_a_running_session(lab_built, tmp_path, start_lab):
    sess = start_lab()
    res, r, _ = triage(tmp_path, "--attach", sess.gdb_address, "--until", "event:installed-all")
    assert res.returncode == 0, res.stdout + res.stderr
    assert r["stop"] == "rkvm.ko event installed-all"
    assert sess.alive()   # not ours to end


def test_qemu_killed_mid_run_exits_2_and_leaves_nothing(lab_built, tmp_path):
    out = tmp_path / "out"
    with no_new_qemu():
        proc = subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", str(out),
                                 "--until", "hang", "--timeout", "120"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

        def killer():
            # triage's QEMU is its child (in a private session directory of its own)
            for _ in range(600):
                kids = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "qemu-system"], capture_output=True,
                                      text=True).stdout.split()
                if kids:
                    time.sleep(3)
                    try:
                        os.kill(int(kids[0]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return
                time.sleep(0.1)
        threading.Thread(target=killer, daemon=True).start()
        stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 2, stdout + stderr
    r = json.loads((out / "report.json").read_text())
    assert r["status"] == "failed" and ("QEMU" in r["reason"] or "GDB" in r["reason"])
    assert "Traceback" not in stderr
    out_gdb = subprocess.run(["pgrep", "-f", f"gdb-multiarch.*{REPO}/rkvm.py"], capture_output=True, text=True)
    assert out_gdb.stdout.strip() == ""


def test_stub_fault_parks_the_cpu_and_is_named(lab_built, tmp_path):
    res, r, _ = triage(tmp_path, "--run", "echo fault > /sys/kernel/debug/rkvm/hvc")
    assert res.returncode == 1, res.stdout + res.stderr
    parked = [f for f in r["findings"] if f["code"] == "el2-parked"]
    assert len(parked) == 1 and "parked in rkvm_stub_park" in parked[0]["summary"]
    ev = " ".join(parked[0]["evidence"])
    assert "stub fault record: ESR 0xf2000052 (EC 0x3c BRK64: BRK #0x52)" in ev and "vector +0x200" in ev

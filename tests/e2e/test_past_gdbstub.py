"""Issue 14 on the live lab: guest RAM by the session's shared file (and QEMU's memory for --attach),
QMP, EL transitions from QEMU's exception log, SMCCC/PSCI."""

import json
import os
import signal
import stat
import threading

import pytest

from gdb_rkvm.qemu import qemu_process, session

from gdb_rkvm.qemu import qmp

from gdb_rkvm.model import stub_abi
from gdb_rkvm.host.triage import rules
from tests.conftest import js, run_cli

pytestmark = pytest.mark.lab
IMM = stub_abi.value("RKVM_HVC_IMM")


def open_by(ram_id) -> list[int]:
    """Pids of processes that have the file (st_dev, st_ino) open."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if [st.st_dev, st.st_ino] == list(ram_id):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def py(mi, code: str) -> str:
    """One line of Python inside GDB (rkvm.py loaded); its printed output."""
    return mi.check(f"python {code}").strip()


# ---- the RAM file and QMP -----------------------------------------------------------------------

def test_ram_file_is_nameless_private_and_dies_with_a_killed_qemu(start_lab, session_dir):
    sess = start_lab()
    assert sess.ram_fd >= 0 and sess.ram_size == 2048 << 20 and sess.ram_base == 0x40000000
    link = os.readlink(f"/proc/{sess.pid}/fd/{sess.ram_fd}")
    assert link.startswith(str(session_dir)) and link.endswith("(deleted)")   # made there, never named
    st = os.stat(f"/proc/{sess.pid}/fd/{sess.ram_fd}")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid() and st.st_nlink == 0
    assert [st.st_dev, st.st_ino] == sess.ram_id and st.st_size == sess.ram_size
    assert set(open_by(sess.ram_id)) == {sess.pid}      # rkvm up kept no copy of its own
    assert sorted(os.listdir(session_dir)) == ["console.sock", "gdb.sock", "lock", "qemu.log", "qmp.sock",
                                               "serial.log", "session.json"]
    assert stat.S_IMODE(os.stat(session_dir).st_mode) == 0o700
    assert qmp.status(sess.qmp_socket) == "prelaunch"   # paused at reset (-S)
    os.kill(sess.pid, signal.SIGKILL)                   # no session-end path runs
    qemu_process.terminate(sess.pid)
    assert open_by(sess.ram_id) == []                   # nothing holds it: its blocks are free again
    assert "ram" not in " ".join(os.listdir(session_dir))


def test_status_and_down_go_through_qmp(start_lab, session_dir):
    sess = start_lab()
    res = run_cli("status")
    assert res.returncode == 0, res.stderr
    assert f"qmp      {sess.qmp_socket} (QEMU: prelaunch)" in res.stdout
    assert "2048 MiB at PA 0x40000000 in a file with no name" in res.stdout
    res = run_cli("down")
    assert res.returncode == 0 and f"stopped QEMU pid {sess.pid}" in res.stdout
    assert sess.identity_problem() is not None
    assert not (session_dir / "qmp.sock").exists()


def test_physical_reads_from_the_ram_file_equal_the_gdbstub_and_stay_coherent(installed_lab):
    _, mi, event = installed_lab()
    assert "memory    physical reads: shared RAM file, 2048 MiB at PA 0x40000000" in mi.check("rkvm status")
    stub = event["stub_pa"]
    mi.check("python from gdb_rkvm.live import gdb_target as t")
    assert py(mi, f"print(t.read_physical({stub:#x}, 4096) == t.gdbstub_read_physical({stub:#x}, 4096))") == "True"
    # a write through GDB is seen by the next physical read (one cache rule: cleared on memory_changed)
    va = int(mi.check("p/x &rkvm_debug.last_event").split("=")[1], 16)
    pa = js(mi.check(f"rkvm walk {va:#x} --json"))["pa"]
    before = int(py(mi, f"print(int.from_bytes(t.read_physical({pa:#x}, 8), 'little'))"))
    mi.check(f"set var *(unsigned long *){va:#x} = 0x1122334455667788")
    assert py(mi, f"print(hex(int.from_bytes(t.read_physical({pa:#x}, 8), 'little')))") == "0x1122334455667788"
    mi.check(f"set var *(unsigned long *){va:#x} = {before:#x}")
    assert int(py(mi, f"print(int.from_bytes(t.read_physical({pa:#x}, 8), 'little'))")) == before
    assert 'received: "0"' in mi.check("maint packet qqemu.PhyMemMode")   # never left in physical mode


def test_walks_and_stub_records_agree_with_and_without_the_ram_file(installed_lab):
    _, mi, _ = installed_lab()
    ram = [js(mi.check(c)) for c in ("rkvm vmmap --json", "rkvm stub --json", "rkvm snapshot --json")]
    mi.check("python from gdb_rkvm.live.gdb_state import STATE; STATE.phys = None; STATE.phys_checked = True")
    stub = [js(mi.check(c)) for c in ("rkvm vmmap --json", "rkvm stub --json", "rkvm snapshot --json")]
    assert ram[0] == stub[0] and ram[1] == stub[1]
    assert ram[2]["stub"] == stub[2]["stub"] and ram[2]["vbar_origins"] == stub[2]["vbar_origins"]


def test_attached_qemu_is_read_through_its_own_memory(start_lab, gdb_on, monkeypatch):
    """`--attach` (a QEMU we did not start, here one without a RAM file): gpa2hva + /proc/PID/mem."""
    sess = start_lab(ram_file=False)
    assert sess.ram_fd == -1
    monkeypatch.setenv("RKVM_ATTACH", json.dumps(session.external(sess.gdb_address).__dict__))
    mi = gdb_on(sess)
    # its exception log is not ours to redirect: this QEMU logs per thread already (one line, no trace)
    err = mi.console("rkvm trace-el --count 1").error
    assert err == "rkvm trace-el: QEMU refused the log file: Cannot change log filename after setting 'tid'", err
    mi.check("rkvm run-to installed-all", timeout=90)
    status = mi.check("rkvm status")
    if os.geteuid() == 0:
        assert f"QEMU pid {sess.pid}'s memory (/proc/PID/mem, gpa2hva)" in status, status
    stub = int(mi.check("p/x rkvm_debug.stub_pa").split("=")[1], 16)
    mi.check("python from gdb_rkvm.live import gdb_target as t")
    assert py(mi, f"print(t.read_physical({stub:#x}, 8192) == t.gdbstub_read_physical({stub:#x}, 8192))") == "True"
    assert js(mi.check("rkvm stub --json"))["cpus"][0]["installed"]


# ---- the exception log ---------------------------------------------------------------------------

def test_trace_el_from_reset_tells_the_boots_el2_story(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    r = js(mi.check("rkvm trace-el --el2-only --count 8 --seconds 90 --json", timeout=150))
    assert r["source"] == "exception log" and r["per_cpu_files"] and r["stopped_by"] == "8 events"
    entries = [e for e in r["events"] if e["kind"] == "entry"]
    assert len(entries) == 8 and all(e["class"] == "hvc" and e["to_el"] == 2 for e in entries)
    for cpu in (0, 1):
        mine = [e for e in r["events"] if e["cpu"] == cpu]
        # the kernel dropping from EL2 to EL1 at boot (its MMU still off: the PA of primary/secondary_entry)
        assert mine[0]["kind"] == "return" and mine[0]["to_el"] == 1 and "_entry" in mine[0]["pc_symbol"]
        e = [x for x in mine if x["kind"] == "entry"]
        # finalise_el2 into the hyp-stub, then the module's HVC_SET_VECTORS, then the first rkvm HVC
        assert e[0]["elr_symbol"].startswith("finalise_el2") and e[0]["pc_symbol"] == "__hyp_stub_vectors+0x400"
        assert e[1]["elr_symbol"].startswith("rkvm_hvc_hyp_stub") and e[1]["pc_symbol"] == "__hyp_stub_vectors+0x400"
        assert e[2]["imm16"] == IMM and e[2]["pc_symbol"] == "rkvm_vec_lower64_sync"
        assert e[2]["vbar"] != e[0]["vbar"] and e[0]["esr_summary"] == "EC 0x16 HVC64: HVC #0x0"
        for entry in e:   # each entry's return: back at EL1, at its ELR, paired by sequence number
            back = [x for x in mine if x["kind"] == "return" and x["entry_seq"] == entry["seq"]]
            if back:
                assert back[0]["pc"] == entry["elr"] and back[0]["from_el"] == 2
        assert sum(1 for x in mine if x["kind"] == "return" and x["entry_seq"] is not None) >= 2
    text = mi.check("rkvm trace-el --class smc,irq --cpu 1 --count 3")
    assert "CPU 1" in text and "CPU 0 " not in text


def test_trace_el_classes_and_smc_answered_by_qemu(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    r = js(mi.check("rkvm trace-el --class smc --count 2 --seconds 60 --json", timeout=120))
    smc = [e for e in r["events"] if e["kind"] == "entry"]
    assert len(smc) == 2 and all(e["psci_by_qemu"] and e["to_el"] == 3 and e["class"] == "smc" for e in smc)
    assert smc[0]["elr"] is None   # QEMU logs no ELR for a call it answers itself (`rkvm smc catch` has them)
    assert "rkvm trace-el: --class bogus: expected one or more of hvc, smc" in \
        mi.console("rkvm trace-el --class bogus").error


def test_hvc_trace_smc_from_reset(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    r = js(mi.check("rkvm hvc trace --smc --count 3 --seconds 60 --json", timeout=120))
    assert [t["class"] for t in r["traps"]] == ["hvc", "smc", "smc"]
    assert r["traps"][0]["caller_symbol"].startswith("finalise_el2") and r["traps"][1]["psci_by_qemu"]
    assert "-> PSCI, answered by QEMU" in mi.check("rkvm hvc trace --smc --count 1 --seconds 30")


def test_hvc_trace_from_the_log_during_a_burst(installed_lab):
    from tests.e2e.test_hvc_commands import run_while_typing
    sess, mi, event = installed_lab()
    res, _ = run_while_typing(mi, sess, f"rkvm hvc trace --imm {IMM:#x} --count 20 --seconds 60",
                              "echo burst 20 > /sys/kernel/debug/rkvm/hvc", timeout=120)
    assert res.ok, res.error
    lines = [x for x in res.output.splitlines() if x.startswith("#")]
    assert len(lines) == 20
    for line in lines:
        assert f"HVC #{IMM:#x} at " in line and "<rkvm_hvc+" in line and "<rkvm_vec_lower64_sync>" in line
        assert "returned to 0xffff" in line
    assert "total 20 traps" in res.output


def test_log_trace_bounded_and_back_to_breakpoints(installed_lab):
    """--seconds with a quiet guest ends on time; --args is the breakpoint path; bad combinations are one line."""
    _, mi, _ = installed_lab()
    r = js(mi.check("rkvm hvc trace --seconds 1 --json", timeout=60))
    assert r["source"] == "exception log" and r["seconds"] < 5
    assert "--smc reads the exception log" in mi.console("rkvm hvc trace --args --smc").error
    assert "--args traces EL2 entries" in mi.console("rkvm trace-el --args --class hvc").error


# ---- SMCCC / PSCI --------------------------------------------------------------------------------

def test_psci_watch_decodes_the_boots_calls(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    assert "watching" in mi.check("rkvm psci --watch")
    mi.check("rkvm run-to installed-all", timeout=90)
    r = js(mi.check("rkvm psci --json"))
    assert r["conduit"] == "smc" and r["how"] == "psci_conduit"
    assert all(c["handles_psci"] for c in r["cpus"].values())
    calls = {c["function"]: c for c in r["calls"]}
    assert calls["PSCI PSCI_VERSION"]["result_text"] == "PSCI 1.1"
    on = calls["PSCI CPU_ON"]
    assert on["x1"] == 1 and on["result_text"] == "SUCCESS" and on["conduit"] == "smc"
    assert "target_cpu=0x1 (MPIDR Aff3.Aff2.Aff1.Aff0 = 0.0.0.1), entry_point_address=" in on["call"]
    entry = int(mi.check("p/x (unsigned long)&secondary_entry - kimage_voffset").split("=")[1], 16)
    assert on["x2"] == entry
    snap = js(mi.check("rkvm snapshot --json", timeout=120))
    assert snap["psci"]["conduit"] == "smc"
    assert not [f for f in rules.diagnose(snap, {}) if f.code.startswith("psci")]


def test_smc_catch_stops_before_the_first_psci_call(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    armed = mi.check("rkvm smc catch")
    assert "catching SMCs" in armed and "SMC instructions" in armed
    stop = mi.console("continue", timeout=90)
    assert "SMC #0x0 from EL1h" in stop.output and "<__arm_smccc_smc+0x4>" in stop.output, stop.output
    assert "PSCI PSCI_VERSION()" in stop.output and "it has not run yet" in stop.output
    tr = js(mi.check("rkvm hvc last --json"))
    assert tr["is_smc"] and tr["function"] == "PSCI PSCI_VERSION" and tr["goes_to"] == "EL3"
    assert mi.check("rkvm smc catch off").strip() == "rkvm: smc catch off"


def test_psci_by_hvc_into_the_stub_is_a_triage_finding(installed_lab):
    """A kernel whose device tree says PSCI by HVC (set here the way the kernel's PSCI driver sets it from
    the DT: psci_conduit and invoke_psci_fn), with the rkvm stub in EL2: `poweroff -f` sends SYSTEM_OFF to
    the stub, which answers HVC_STUB_ERR, and the guest cannot power off."""
    sess, mi, _ = installed_lab()
    mi.check("set var psci_conduit = SMCCC_CONDUIT_HVC")
    mi.check("set var invoke_psci_fn = __invoke_psci_fn_hvc")
    mi.check("rkvm psci --watch")
    r = js(mi.check("rkvm psci --json"))
    assert r["conduit"] == "hvc" and [c["handles_psci"] for c in r["cpus"].values()] == [False, False]
    assert "does NOT handle PSCI" in mi.check("rkvm psci")
    snap = js(mi.check("rkvm snapshot --json", timeout=120))
    assert [f.code for f in rules.diagnose(snap, {})] == ["psci-conduit-hvc"]   # before any call: a warning
    result = {}
    worker = threading.Thread(target=lambda: result.update(stop=mi.run_for(15)))
    worker.start()
    log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60, start=0)
    session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))
    with session.SerialConsole(sess) as console:
        console.send("poweroff -f\n")
        session.serial_wait(sess, "reboot: Power down", timeout=30)
        worker.join(60)
    assert "stop" in result
    snap = js(mi.check("rkvm snapshot --json", timeout=120))
    found = [f for f in rules.diagnose(snap, {}) if f.code == "psci-call-unhandled"]
    assert found, snap["psci"]
    ev = " ".join(found[0].evidence)
    assert "PSCI SYSTEM_OFF() by HVC at" in ev and "<__arm_smccc_hvc+0x4>" in ev and "(rkvm-stub)" in ev
    assert "returned 0xbadca11 (HVC_STUB_ERR" in ev

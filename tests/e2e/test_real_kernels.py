"""Kernels and modules like users have: KASLR on, the seed's Buildroot layout (rootfs.ext4 on
virtio-blk, no initramfs), and a hypervisor module gdb-rkvm knows nothing about."""

import json
import re
import shutil
import subprocess
import sys
import threading

import pytest

from gdb_rkvm.qemu import session
from gdb_rkvm.paths import REPO
from tests.conftest import js, no_new_qemu

pytestmark = pytest.mark.lab




def hexval(mi, expr):
    return int(mi.check(f"p/x {expr}").split("=")[1].split()[0], 16)


def test_kaslr_slide_is_found_and_symbols_move(start_lab, gdb_on):
    sess = start_lab("lab-kaslr")
    assert "nokaslr" not in sess.kernel_cmdline
    mi = gdb_on(sess)
    assert re.search(r"KASLR slide 0x[0-9a-f]+: vmlinux symbols relocated", mi.startup_output), mi.startup_output
    k = js(mi.check("rkvm kaslr --json"))
    assert k["capable"] and k["known"] and k["slide"] != 0
    assert "VBAR_EL1 of CPU" in k["how"]
    assert "vectors in section .text" in mi.check("info symbol $VBAR")
    event = js(mi.check("rkvm run-to installed-all --json", timeout=90))   # module symbols are right too
    assert event["arg"] == 2
    cpus = js(mi.check("rkvm cpus --json"))
    assert [c["vbar_el2_kind"] for c in cpus["cpus"]] == ["rkvm-stub", "rkvm-stub"]
    assert cpus["hyp_stub_pa"] == hexval(mi, "rkvm_debug.prev_vectors_pa")
    v = js(mi.check("rkvm v2p rkvm_init --json"))
    assert v["region"] == "modules" and not v["agree"]
    assert v["formula"] == (v["va"] - hexval(mi, "kimage_voffset")) % 2**64
    assert v["walk_pa"] == int(re.search(r"gpa: (0x[0-9a-f]+)", mi.check(f"monitor gva2gpa {v['va']:#x}")).group(1), 16)
    lin = js(mi.check("rkvm v2p rkvm_debug.stub_va --json"))
    assert lin["region"] == "linear map" and lin["agree"]


def test_triage_on_kaslr_names_the_vmalloc_bug(lab_built, tmp_path):
    out = tmp_path / "out"
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--profile", "lab-kaslr",
                              "--mode", "vmalloc", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                             timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    r = json.loads((out / "report.json").read_text())
    assert "vbar-el2-from-virt-to-phys" in {f["code"] for f in r["findings"]}


@pytest.fixture
def buildroot_images(lab_built, tmp_path):
    """A Buildroot-like images dir: Image (KASLR kernel) and a small rootfs.ext4 made with mkfs.ext4 -d."""
    images, root = tmp_path / "images", tmp_path / "rootfs"
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "lib/modules", "root", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(lab_built / "downloads/busybox", root / "bin/busybox")
    shutil.copy(REPO / "lab/init", root / "sbin/init")
    shutil.copy(lab_built / "module-kaslr/rkvm.ko", root / "lib/modules/rkvm.ko")
    images.mkdir()
    shutil.copy(lab_built / "kernel-kaslr/Image", images / "Image")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(images / "rootfs.ext4"), "32M"], check=True,
                   capture_output=True)
    return images


def test_buildroot_profile_boots_rootfs_ext4_with_kaslr(buildroot_images, session_dir, gdb_on):
    sets = {"images": str(buildroot_images), "vmlinux": str(REPO / "build/kernel-kaslr/vmlinux"),
            "modules": str(REPO / "build/module-kaslr")}
    sess = session.start("buildroot", overrides=sets, directory=session_dir)
    try:
        assert sess.kernel_cmdline == "root=/dev/vda rw console=ttyAMA0"
        assert "-initrd" not in sess.argv and "virtio-blk-device,drive=hd0" in sess.argv
        mi = gdb_on(sess)
        assert "KASLR slide" in mi.startup_output
        event = js(mi.check("rkvm run-to installed-all --json", timeout=120))
        assert event["arg"] == 2
        mi.check("detach")
        log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
        assert "EXT4-fs (vda): mounted" in log or "VFS: Mounted root (ext4" in log
    finally:
        session.stop(session_dir)


def test_triage_on_the_buildroot_profile(buildroot_images, tmp_path):
    out = tmp_path / "out"
    sets = ["--set", f"images={buildroot_images}", "--set", f"vmlinux={REPO}/build/kernel-kaslr/vmlinux",
            "--set", f"modules={REPO}/build/module-kaslr"]
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--profile", "buildroot", *sets,
                              "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["status"] == "healthy" and "boot finished" in r["stop"]


def test_a_module_that_is_not_ours(start_lab, gdb_on):
    sess = start_lab(append="rkvm.load=othervisor")
    mi = gdb_on(sess)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        res=mi.console("rkvm run-to removed --timeout 8", timeout=60)))   # no such event: just runs 8 s
    worker.start()
    session.serial_wait(sess, "othervisor: vectors at PA", timeout=60)
    worker.join(60)
    res = result["res"]
    moved = re.search(r"rkvm: VBAR_EL2 moved on CPU 0, 1: 0x0 -> (0x[0-9a-f]+) \(the kernel's hyp-stub, set at "
                      r"boot\) -> (0x[0-9a-f]+): (.*)", res.output)   # the hyp-stub came between reset and it
    assert moved, res.output
    pa = int(re.search(r"vectors at PA (0x[0-9a-f]+)", open(sess.serial_log).read()).group(1), 16)
    assert int(moved.group(2), 16) == pa
    assert "a page of RAM outside any module image" in moved.group(3) and "+0x400: b #" in moved.group(3)
    # its own ELF, placed at VBAR_EL2: handlers get names
    loaded = mi.check(f"rkvm stub --elf {REPO}/build/othervisor/ov_el2.elf")
    assert f"ov_el2.elf symbols at PA {pa:#x}" in loaded
    assert "ov_lower_sync in section .text" in mi.check("info symbol $VBAR_EL2 + 0x400")
    vec = js(mi.check("rkvm vectors el2 --json --count 1"))
    assert {s["offset"]: s["symbol"] for s in vec["slots"]}[0x400] == "ov_lower_sync"
    # catch its HVC and step it
    mi.check("rkvm hvc catch --imm 0x4f")
    result.clear()
    worker = threading.Thread(target=lambda: result.update(res=mi.console("continue", timeout=60)))
    worker.start()
    session.serial_wait(sess, "/ # ", timeout=30, start=open(sess.serial_log, "rb").read().find(b"shell ready"))
    with session.SerialConsole(sess) as console:
        console.send("echo 5 > /sys/kernel/debug/othervisor/ping\n")
        worker.join(60)
    assert "HVC #0x4f from EL1h" in result["res"].output, result["res"].output
    mi.check("rkvm hvc catch off")
    step = js(mi.check("rkvm step-el2 --json"))
    symbols = [s["symbol"] for s in step["steps"]]
    assert symbols[0] == "ov_lower_sync" and "ov_handle_hvc" in symbols and symbols[-1].startswith("ov_ping")
    assert step["transition"]["x0"] == 6 and step["transition"]["to"] == "EL1h"

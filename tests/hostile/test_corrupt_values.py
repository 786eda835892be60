"""Values a corrupted guest (or a careless profile) hands over: each is one line, never a traceback."""

import importlib
import struct

import pytest

from gdb_rkvm.qemu import profiles

from gdb_rkvm.model import stub_abi
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.qemu.profiles import ProfileError
from tests.conftest import no_new_qemu, run_cli

from .fakegdb import char_array

MAX = stub_abi.value("RKVM_MAX_CPUS")


# ---- rkvm_debug.stub_pa near 2^64

def test_reads_past_2_64_are_one_line_errors(fake_gdb):
    t = importlib.import_module("gdb_rkvm.live.gdb_target")
    for read in (t.read_physical, t.read_virtual):
        with pytest.raises(RkvmError, match="past the end of the 64-bit address space"):
            read((1 << 64) - 0x100, 0x1000)    # the fake, like GDB, raises OverflowError here


def test_stub_pa_near_2_64_is_not_a_stub(fake_gdb):
    kernel_facts = importlib.import_module("gdb_rkvm.live.kernel_facts")
    assert kernel_facts.is_rkvm_stub(0xFFFF_FFFF_FFFF_F800) is False


# ---- Value.string() on bytes >= 0x80

def test_guest_strings_with_bytes_above_0x7f_are_replaced(fake_gdb):
    c_string = importlib.import_module("gdb_rkvm.live.guest_strings").c_string
    fake_gdb.memory.write(0x1000, b"rkvm\xff\xfe\x80\0")
    assert c_string(char_array(0x1000, 56)) == "rkvm\ufffd\ufffd\ufffd"


# ---- profiles: not UTF-8, memory sizes, smp

def test_non_utf8_profile_is_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_bytes(b'description = "caf\xe9"\n[machine]\nmachine = "virt"\n')
    with pytest.raises(ProfileError) as e:
        profiles.load(str(p))
    assert str(e.value) == f"{p}: not UTF-8 text (byte 0xe9 at offset 18); TOML files are UTF-8"


@pytest.mark.parametrize("text,size", [("2048", 2 << 30), ("2G", 2 << 30), ("2g", 2 << 30), ("512M", 512 << 20),
                                       ("1.5G", 3 << 29), ("size=4G,slots=2,maxmem=8G", 4 << 30),
                                       ("1T", 1 << 40), ("65536k", 64 << 20)])
def test_memory_sizes_take_qemu_suffixes(text, size):
    assert profiles.memory_bytes(text) == size   # '2G' was read as 2 MiB


@pytest.mark.parametrize("text", ["2X", "", "G", "-1", "0", "two"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(ProfileError):
        profiles.memory_bytes(text)


def test_profile_memory_is_checked_at_load():
    args = profiles.load("lab", {"memory": "2G"}).qemu_args()
    assert args[args.index("-m") + 1] == "2G"
    with pytest.raises(ProfileError, match=r"lab.toml:\d+: memory '2X' is not a QEMU size"):
        profiles.load("lab", {"memory": "2X"})


def test_ram_layout_from_argv_understands_2g(fake_gdb):
    kernel_facts = importlib.import_module("gdb_rkvm.live.kernel_facts")
    state = importlib.import_module("gdb_rkvm.live.gdb_state").STATE

    class Sess:
        argv = ["qemu-system-aarch64", "-m", "2G"]
    state.session = Sess()
    assert kernel_facts.ram_ranges() == [(0x4000_0000, 0x4000_0000 + (2 << 30))]


# ---- more than RKVM_MAX_CPUS vCPUs

@pytest.mark.parametrize("smp", ["0", "-1", str(MAX + 1), "64", "2,maxcpus=16", "cpus=9"])
def test_smp_outside_the_stub_slots_is_refused(smp):
    with pytest.raises(ProfileError):
        profiles.check_smp(smp)
    with pytest.raises(ProfileError):
        profiles.load("lab").qemu_args(smp=smp)


def test_smp_inside_is_fine():
    assert [profiles.check_smp(x) for x in ("1", str(MAX), "2,sockets=1")] == [1, MAX, 2]


@pytest.mark.parametrize("args", [("up", "--smp", "9"), ("up", "--smp", "0"), ("gdb", "--smp", "-2"),
                                  ("triage", "--smp", "9", "--out", "/nonexistent/never"),
                                  ("up", "--set", "smp=16")])
def test_cli_refuses_smp_in_one_line_and_starts_nothing(args, tmp_path):
    with no_new_qemu():
        res = run_cli(*args, env={"RKVM_SESSION_DIR": str(tmp_path / "s")})
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert "smp" in res.stderr
    assert not (tmp_path / "s").exists()


def test_stub_records_stop_at_the_slots():
    c = stub_abi.constants()
    page = bytearray(c["RKVM_STUB_SIZE"])
    for cpu in range(MAX):
        struct.pack_into("<Q", page, c["RKVM_OFF_STACK_TOP"] + 8 * cpu, 0x4100_0000 + cpu * 0x400)
    recs = stub_abi.cpu_records(bytes(page), list(range(MAX + 4)))
    assert all(recs[n]["stack_top"] == 0x4100_0000 + n * 0x400 for n in range(MAX))
    assert all(recs[n] is None for n in range(MAX, MAX + 4))   # CPU 8 read the fault record of CPU 0 before
    assert stub_abi.cpu_records(bytes(64), [0]) == {0: None}   # a short page: nothing read past it


def test_cpu_past_the_slots_is_not_reported_el2_stack_unset():
    from gdb_rkvm.host.triage import rules

    from tests.unit.test_triage_rules import cpu, snap
    c = stub_abi.constants()
    page = bytearray(c["RKVM_STUB_SIZE"])
    for n in range(MAX):
        struct.pack_into("<Q", page, c["RKVM_OFF_STACK_TOP"] + 8 * n, 0x4100_0000 + n * 0x400)
    recs = {str(k): v for k, v in stub_abi.cpu_records(bytes(page), list(range(MAX + 1))).items()}
    findings = rules.diagnose(snap([cpu(n) for n in range(MAX + 1)], stub_records=recs), {})
    assert [f.code for f in findings] == []

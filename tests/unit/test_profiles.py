"""Profiles: the two shipped ones load; every malformed one is refused with file, line and key."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.qemu import profiles, session
from gdb_rkvm.qemu.profiles import ProfileError

GOOD = """description = "t"
[vars]
k = "/k"
img = "${k}/Image"
[machine]
machine = "virt"
cpu = "cortex-a57"
kernel = "${img}"
"""


def write(tmp_path, text, name="p.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_lab_profile_is_the_seed_machine():
    p = profiles.load("lab")
    args = p.qemu_args()
    assert args[:5] == ["qemu-system-aarch64", "-M", "virt,gic-version=3,virtualization=on", "-cpu", "cortex-a57"]
    assert args[args.index("-smp") + 1] == "2" and args[args.index("-m") + 1] == "2048"
    assert p.machine["kernel"].endswith("build/kernel/Image")
    assert "nokaslr" in p.kernel_cmdline()


def test_buildroot_profile_is_the_seed_makefile(tmp_path):
    p = profiles.load("buildroot", {"images": str(tmp_path)})
    args = p.qemu_args()
    assert args[args.index("-kernel") + 1] == f"{tmp_path}/Image"
    assert "-initrd" not in args
    assert f"if=none,file={tmp_path}/rootfs.ext4,format=raw,id=hd0" in args
    assert "virtio-blk-device,drive=hd0" in args
    assert p.kernel_cmdline() == "root=/dev/vda rw console=ttyAMA0"
    assert args[args.index("-m") + 1] == "2048"


def test_buildroot_paths_default_to_home():
    p = profiles.load("buildroot")
    assert p.machine["kernel"].endswith("/buildroot/output/images/Image")
    assert "~" not in p.machine["kernel"]


def test_overrides_and_expansion(tmp_path):
    p = profiles.load(str(write(tmp_path, GOOD)), {"k": "/other"})
    assert p.machine["kernel"] == "/other/Image"


@pytest.mark.parametrize("text,fragment", [
    (GOOD.replace("cpu =", "cpux ="), "p.toml:7: unknown key 'machine.cpux'"),
    (GOOD.replace('cpu = "cortex-a57"', "cpu = 57"), "p.toml:7: 'machine.cpu' must be a string"),
    (GOOD.replace('kernel = "${img}"', 'kernel = "${nope}"'), "unknown variable ${nope}"),
    (GOOD.replace('k = "/k"', 'k = "${img}"'), "in a cycle"),
    (GOOD.replace("[machine]", "[machin]"), "p.toml:5: unknown key 'machin'"),
    (GOOD.replace("machine = \"virt\"\n", ""), "[machine] needs 'machine'"),
    (GOOD + "[gdb]\nmodule_dirs = \"x\"\n", "p.toml:10: 'gdb.module_dirs' must be a list of strings"),
    (GOOD.replace('cpu = "cortex-a57"', 'cpu = "cortex-a57'), "p.toml: "),
])
def test_malformed_profiles_name_file_line_and_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        profiles.load(str(path))
    assert fragment in str(e.value)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_toml_syntax_error_has_a_line(tmp_path):
    path = write(tmp_path, GOOD.replace('cpu = "cortex-a57"', 'cpu = = 1'))
    with pytest.raises(ProfileError, match=r"p\.toml: .*line 7"):
        profiles.load(str(path))


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match="unknown profile 'nope' .*buildroot, lab"):
        profiles.load("nope")


def test_set_of_unknown_variable_is_refused():
    with pytest.raises(ProfileError, match="--set kernl: profile 'lab' has no variable 'kernl'"):
        profiles.load("lab", {"kernl": "/x"})


@given(st.text(max_size=30))
def test_parse_overrides_never_raises_anything_but_profile_error(item):
    try:
        out = profiles.parse_overrides([item])
    except ProfileError:
        return
    name, value = item.split("=", 1)
    assert out == {name: value}


def test_session_argv_binds_gdbstub_to_loopback(tmp_path):
    p = profiles.load("lab")
    argv = session.build_argv(p, 4321, tmp_path, "", None)
    assert "-s" not in argv
    assert argv[argv.index("-gdb") + 1] == "tcp:127.0.0.1:4321"
    assert "-S" in argv
    assert any(a.startswith("socket,id=ser0") and "server=on" in a for a in argv)

"""Hostile suite, other local users: each attack from issue 13 ("Other local users") now fails safely.

Another user on the same host must not reach the gdbstub (a shell: `monitor migrate "exec:..."`), nor
get a profile or a --set value to open one, nor plant symlinks where reports and session files go."""

import json
import functools
import os
import re
import stat
import subprocess
import sys

import pytest

from gdb_rkvm.qemu import profiles, qemu_process, session
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import REPO, check_dir_safe, private_dir, write_atomic
from gdb_rkvm.host.triage.run import prepare_out
from tests.conftest import no_new_qemu, run_cli

NOBODY = 65534
def as_root(test):
    """The test acts as another user (nobody): it needs root, and says so by failing, never by skipping."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        assert os.geteuid() == 0, "this test acts as user nobody: run the suite as root (make test does on CI)"
        return test(*args, **kwargs)
    return run


def tcp_listeners(pid: int) -> list[str]:
    """Every TCP socket process `pid` listens on (hex local addresses, as /proc/net/tcp has them)."""
    owned = qemu_process._socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in owned:
                found.append(f[1])
    return found


def as_nobody(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable,
                           "-c", code], capture_output=True, text=True, timeout=30)


# --- the gdbstub: a Unix socket only its owner can reach ---------------------------------------------

def test_session_argv_has_no_network_gdbstub(tmp_path):
    p = profiles.load("lab")
    argv = session.build_argv(p, str(tmp_path / "gdb.sock"), tmp_path, "", None)
    joined = " ".join(argv)
    assert "-s" not in argv and "tcp:" not in joined
    assert argv[argv.index("-gdb") + 1] == "chardev:gdb0"
    assert f"socket,id=gdb0,path={tmp_path}/gdb.sock,server=on,wait=off" in argv
    # --tcp is loopback only
    argv = session.build_argv(p, 4321, tmp_path, "", None)
    assert argv[argv.index("-gdb") + 1] == "tcp:127.0.0.1:4321"


@pytest.mark.lab
def test_gdbstub_is_a_private_unix_socket_another_user_cannot_reach(start_lab, session_dir):
    sess = start_lab()
    assert sess.gdb_address == str(session_dir / "gdb.sock")
    st = os.stat(session_dir)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert stat.S_ISSOCK(os.stat(sess.gdb_address).st_mode)
    assert tcp_listeners(sess.pid) == []   # QEMU listens on no TCP port at all
    rec = json.loads((session_dir / "session.json").read_text())
    assert rec["gdb_address"] == sess.gdb_address   # documented: where plain GDB connects
    # plain GDB, as a script would attach it, from session.json's gdb_address
    gdb = subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-ex", f"target remote {rec['gdb_address']}",
                          "-ex", "info threads", "-ex", "detach"], capture_output=True, text=True, timeout=60)
    assert "CPU#1" in gdb.stdout, gdb.stdout + gdb.stderr
    if os.geteuid() == 0:
        other = as_nobody(f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({sess.gdb_address!r})")
        assert other.returncode != 0 and "PermissionError" in other.stderr, other.stderr


@pytest.mark.lab
def test_tcp_only_when_asked_loopback_only_with_a_warning(lab_built, session_dir):
    with no_new_qemu():
        up = run_cli("up", "--tcp")
        try:
            assert up.returncode == 0, up.stderr
            warning = [x for x in up.stderr.splitlines() if "warning" in x]
            assert len(warning) == 1 and "any local user can connect" in warning[0]
            rec = json.loads((session_dir / "session.json").read_text())
            host, port = rec["gdb_address"].rsplit(":", 1)
            assert host == "127.0.0.1"
            addrs = tcp_listeners(rec["pid"])
            assert addrs and all(qemu_process.is_loopback_hex(a.rsplit(":", 1)[0]) for a in addrs), addrs
            assert {int(a.rsplit(":", 1)[1], 16) for a in addrs} == {int(port)}
            assert "-s" not in rec["argv"]
        finally:
            down = run_cli("down")
        assert down.returncode == 0, down.stderr


# --- profiles: no gdbstub, monitor or listener through extra_args; --set cannot add options ---------

def _profile(tmp_path, extra: str) -> str:
    p = tmp_path / "evil.toml"
    p.write_text('description = "x"\n[vars]\nk = "/k"\n[machine]\nmachine = "virt"\ncpu = "cortex-a57"\n'
                 'kernel = "${k}"\nextra_args = [\n  "-device", "virtio-rng-device",\n' + extra + "\n]\n")
    return str(p)


@pytest.mark.parametrize("extra", [
    '"-s"',
    '"-gdb", "tcp::1234"',
    '"--gdb", "tcp:0.0.0.0:1234"',
    '"-monitor", "tcp:0.0.0.0:4444,server=on,wait=off"',
    '"-qmp", "unix:/tmp/qmp.sock,server=on"',
    '"-serial", "telnet::5555,server=on"',
    '"-chardev", "socket,id=m,host=0.0.0.0,port=4444,server=on"',
    '"-netdev", "user,id=n,hostfwd=tcp::2222-:22"',
    '"-display", "vnc=:1"',
    '"-incoming", "tcp:0:4446"',
])
def test_profile_extra_args_cannot_open_a_gdbstub_monitor_or_listener(tmp_path, extra):
    path = _profile(tmp_path, extra)
    with pytest.raises(profiles.ProfileError) as e:
        profiles.load(path)
    msg = str(e.value)
    assert "\n" not in msg and "is not allowed" in msg
    assert msg.startswith(f"{path}:10: extra_args:"), msg   # file:line of the offending item


def test_profile_refusal_is_one_line_from_rkvm_up(tmp_path, session_dir):
    with no_new_qemu():
        res = run_cli("up", "--profile", _profile(tmp_path, '"-s"'))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "extra_args: '-s' is not allowed" in res.stderr and "Traceback" not in res.stderr


def test_set_value_commas_are_doubled_inside_qemu_options(tmp_path):
    p = profiles.load("buildroot", {"rootfs": "/x,readonly=on", "kernel": "/k,initrd=/y"})
    args = p.qemu_args()
    assert "if=none,file=/x,,readonly=on,format=raw,id=hd0" in args
    assert args[args.index("-kernel") + 1] == "/k,initrd=/y"   # not a comma-separated option: as is
    # the session's own paths too
    d = tmp_path / "a,server=off,path=evil"
    argv = session.build_argv(profiles.load("lab"), str(d / "gdb.sock"), d, "", None)
    assert f"socket,id=gdb0,path={tmp_path}/a,,server=off,,path=evil/gdb.sock,server=on,wait=off" in argv


@pytest.mark.lab
def test_set_rootfs_with_commas_is_a_file_name_to_qemu(lab_built, session_dir, tmp_path):
    """End to end: QEMU reads `--set rootfs=/x,readonly=on` as one file name, not as an option."""
    with no_new_qemu():
        res = run_cli("up", "--profile", "buildroot", "--set", f"kernel={lab_built}/kernel/Image",
                      "--set", f"rootfs={tmp_path}/none,readonly=on")
    assert res.returncode == 2
    assert res.stderr.startswith("rkvm up: QEMU exited at start:") and "Traceback" not in res.stderr
    assert f"{tmp_path}/none,readonly=on" in res.stderr, res.stderr


@pytest.mark.lab
def test_session_directory_with_commas_and_a_long_path(lab_built, tmp_path):
    """A comma in the session directory stays in the path (doubled for QEMU); a path too long for a Unix
    socket (108 bytes) gets a short private directory for the sockets, removed with the session."""
    d = tmp_path / "a,server=off"
    sess = session.start("lab", directory=d)
    try:
        assert sess.gdb_address == f"{d}/gdb.sock" and qemu_process.listening_unix(sess.gdb_address, sess.pid)
    finally:
        session.stop(d)
    long = tmp_path / ("x" * 60) / ("y" * 60)
    sess = session.start("lab", directory=long)
    try:
        short = os.path.dirname(sess.gdb_address)
        assert len(sess.gdb_address) < 108 and sess.socket_dir == short and short != str(long)
        assert stat.S_IMODE(os.stat(short).st_mode) == 0o700
        assert qemu_process.listening_unix(sess.gdb_address, sess.pid)
        with pytest.raises(RkvmError, match="already running"):
            session.start("lab", directory=long)
    finally:
        session.stop(long)
    assert not os.path.exists(short) and not sess.alive()


# --- files in directories someone else can write ----------------------------------------------------

def test_write_atomic_replaces_a_planted_symlink_never_follows_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").symlink_to(victim)
    (out / ".report.json.tmp").symlink_to(victim)   # the old fixed temporary name
    write_atomic(out / "report.json", "{}\n")
    assert victim.read_text() == "precious\n"
    assert not (out / "report.json").is_symlink() and (out / "report.json").read_text() == "{}\n"
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == [".report.json.tmp"]  # ours: gone


def test_two_writers_never_share_a_temporary(tmp_path):
    import threading
    errors = []

    def writer(n):
        try:
            for _ in range(200):
                write_atomic(tmp_path / "r.json", f"{n}\n" * 1000)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = (tmp_path / "r.json").read_text()
    assert len(set(text.split())) == 1   # one writer's whole file, never a mix
    assert not list(tmp_path.glob(".*.tmp"))


@as_root
def test_out_dir_of_another_user_is_refused(tmp_path):
    other = tmp_path / "bob"
    other.mkdir()
    os.chown(other, NOBODY, NOBODY)
    with pytest.raises(RkvmError, match=r"--out .*bob: owned by nobody, not by you"):
        prepare_out(other)


def test_out_dir_writable_by_others_is_refused_unless_sticky(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(RkvmError, match="writable by other users"):
        check_dir_safe(d)
    d.chmod(0o1777)   # like /tmp: others cannot rename or remove our files
    check_dir_safe(d)
    d.chmod(0o775)    # group-writable: fine if the group is ours alone (umask 002, user private groups)
    from gdb_rkvm.paths import _own_private_group
    if _own_private_group(os.stat(d).st_gid):
        check_dir_safe(d)
    if os.geteuid() == 0:
        os.chown(d, 0, NOBODY)   # a group with someone else in it
        with pytest.raises(RkvmError, match="writable by other users"):
            check_dir_safe(d)


def test_session_dir_symlink_or_foreign_is_refused_loose_mode_is_fixed(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(RkvmError, match="is a symbolic link"):
        private_dir(tmp_path / "link")
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    private_dir(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, NOBODY, NOBODY)
        with pytest.raises(RkvmError, match="belongs to nobody"):
            private_dir(foreign)


def test_session_files_planted_as_symlinks_are_not_followed(tmp_path, monkeypatch):
    """A qemu.log symlink (the log QEMU writes) is refused, never written through."""
    from gdb_rkvm.paths import open_private
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "qemu.log").symlink_to(victim)
    with pytest.raises(RkvmError, match="cannot open"):
        open_private(tmp_path / "qemu.log")
    assert victim.read_text() == "precious\n"


def test_setup_unpacks_debs_in_a_private_directory():
    """lab/setup.sh runs dpkg-deb -x as root: only inside a fresh `mktemp -d` (mode 0700) directory."""
    text = (REPO / "lab/setup.sh").read_text()
    tmp_var = re.search(r"^\s*(\w+)=\$\(mktemp -d\)", text, re.MULTILINE)
    assert tmp_var, "setup.sh makes no private temporary directory"
    for line in (x for x in text.splitlines() if "dpkg-deb" in x and not x.strip().startswith("#")):
        args = line.split("dpkg-deb", 1)[1].split()
        assert args[0] == "-x" and all(a.startswith(f'"${tmp_var.group(1)}') for a in args[1:3]), line
    assert "apt-get download" in text and f'cd "${tmp_var.group(1)}"' in text

"""The session's RAM file, QMP socket and exception log in QEMU's argv; the QMP client against a fake
QMP server (well-behaved and not); gpa2hva answers. No QEMU here."""

import json
import os
import socket
import stat
import threading
import time

import pytest

from gdb_rkvm.qemu import guest_ram, qmp

from gdb_rkvm.qemu import profiles, session
from gdb_rkvm.errors import RkvmError


def test_argv_has_ram_file_qmp_and_per_thread_log(tmp_path):
    d = tmp_path / "a,share=off"
    argv = session.build_argv(profiles.load("lab"), str(d / "gdb.sock"), d, "", None, qmp=d / "qmp.sock",
                              ram=(7, 2 << 30), exception_log=str(d / session.EXCEPTION_LOG))
    # commas of the directory doubled inside QEMU's comma-separated options, as for the gdbstub's socket
    assert f"socket,id=qmp0,path={tmp_path}/a,,share=off/qmp.sock,server=on,wait=off" in argv
    assert argv[argv.index("-mon") + 1] == "chardev=qmp0,mode=control"
    obj = argv[argv.index("-object") + 1]
    assert obj == f"memory-backend-file,id={session.RAM_BACKEND_ID},size={2 << 30},mem-path=/proc/self/fd/7,share=on"
    assert "-machine" in argv and argv[argv.index("-machine") + 1] == f"memory-backend={session.RAM_BACKEND_ID}"
    # -D takes a plain file name (no QemuOpts): the path as is
    assert argv[argv.index("-D") + 1] == f"{d}/exceptions.%d" and argv[argv.index("-d") + 1] == "tid"
    assert "-qmp" not in argv and "tcp:" not in " ".join(argv)


def test_argv_without_the_extras(tmp_path):
    argv = session.build_argv(profiles.load("lab"), str(tmp_path / "gdb.sock"), tmp_path, "", None)
    assert "-object" not in argv and "-mon" not in argv and "-D" not in argv


@pytest.mark.parametrize("overrides,problem", [
    ({}, None),
    ({"memory": "2G"}, None),
])
def test_ram_file_for_the_lab(overrides, problem):
    assert session.ram_file_problem(profiles.load("lab", overrides)) == problem


def test_ram_file_refused_where_ram_is_not_one_virt_block(tmp_path):
    p = profiles.load("lab")
    p.machine = {**p.machine, "machine": "sbsa-ref"}
    assert "not QEMU's virt board" in session.ram_file_problem(p)
    p.machine = {**profiles.load("lab").machine, "memory": "2G,slots=2,maxmem=4G"}
    assert "options" in session.ram_file_problem(p)
    p.machine = {**profiles.load("lab").machine, "extra_args": ["-numa", "node,memdev=m0"]}
    assert "memory backend" in session.ram_file_problem(p)


def test_ram_file_has_no_name_and_is_private(tmp_path):
    fd, ident = session._ram_file(tmp_path)
    try:
        st = os.fstat(fd)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 0 and st.st_uid == os.geteuid()
        assert ident == [st.st_dev, st.st_ino]
        assert os.listdir(tmp_path) == []     # nothing in the directory: nobody can open it by name
    finally:
        os.close(fd)


def test_socket_dir_for_percent_and_colon(tmp_path):
    for name in ("a%d", "b:c"):
        d = tmp_path / name
        d.mkdir()
        short = session._socket_dir(d)
        assert short is not None and not set("%:") & set(str(short))
        session._remove_socket_dir(short)
        assert not short.exists()
    assert session._socket_dir(tmp_path) is None


def test_exception_logs_removed(tmp_path):
    for n in ("exceptions.123", "exceptions.456", "exceptions.x", "other"):
        (tmp_path / n).write_text("x")
    session._remove_exception_logs(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["exceptions.x", "other"]


# ---- QMP client against a fake server -------------------------------------------------------------

class FakeQmp:
    """A Unix socket server speaking just enough QMP, with a script of what to send back."""

    def __init__(self, path, replies, greeting=True):
        self.path, self.replies, self.greeting, self.received = str(path), replies, greeting, []
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.srv.accept()
        f = conn.makefile("rwb")
        if self.greeting is True:
            f.write(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n')
        elif self.greeting:
            f.write(self.greeting)
        f.flush()
        for reply in self.replies:
            line = f.readline()
            if not line:
                break
            self.received.append(json.loads(line))
            for r in reply if isinstance(reply, list) else [reply]:
                f.write(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode())
            f.flush()
        time.sleep(0.2)
        conn.close()


def ok(value=None):
    return {"return": {} if value is None else value}


def test_qmp_execute_skips_events_and_returns(tmp_path):
    srv = FakeQmp(tmp_path / "q", [ok(), [{"event": "STOP", "timestamp": {}}, ok({"status": "paused"})]])
    assert qmp.status(str(tmp_path / "q")) == "paused"
    assert [m["execute"] for m in srv.received] == ["qmp_capabilities", "query-status"]


def test_qmp_hmp_and_quoting(tmp_path):
    srv = FakeQmp(tmp_path / "q", [ok(), ok("Host virtual address for 0x40000000 (rkvm-ram) is 0x7f0000000000\r\n")])
    out = qmp.hmp(str(tmp_path / "q"), "gpa2hva 0x40000000")
    assert guest_ram.parse_gpa2hva(out) == 0x7F0000000000
    assert srv.received[1]["arguments"] == {"command-line": "gpa2hva 0x40000000"}
    assert qmp.hmp_quote('/a b/"c"') == '"/a b/\\"c\\""'
    with pytest.raises(RkvmError, match="control characters"):
        qmp.hmp_quote("/x\nquit")


def test_qmp_error_is_one_line_with_qemu_words(tmp_path):
    FakeQmp(tmp_path / "q", [ok(), {"error": {"class": "GenericError", "desc": "nope\x1b[2J"}}])
    with pytest.raises(qmp.QmpError) as e:
        qmp.call(str(tmp_path / "q"), "stop")
    assert str(e.value) == "QMP stop: nope\\x1b[2J"


@pytest.mark.parametrize("greeting,match", [
    (b'{"hello": 1}\n', "not a QMP monitor"),
    (b"not json\n", "not JSON"),
    (b"x" * (qmp.MAX_LINE + 10), "longer than"),
    (b"", "did not answer|closed"),
])
def test_qmp_bad_servers(tmp_path, greeting, match):
    FakeQmp(tmp_path / "q", [], greeting=greeting or None)
    with pytest.raises(qmp.QmpError, match=match):
        qmp.call(str(tmp_path / "q"), "query-status", timeout=0.5)


def test_qmp_no_socket(tmp_path):
    with pytest.raises(qmp.QmpError, match="cannot reach QEMU's QMP socket"):
        qmp.call(str(tmp_path / "none"), "quit")


@pytest.mark.parametrize("text,value", [
    ("Host virtual address for 0x40000000 (rkvm-ram) is 0x7f12a0000000", 0x7F12A0000000),
    ("No memory is mapped at address 0x0", None),
    ("Host virtual address for 0x1 (x\n) is 0x5", None),
    ("", None),
])
def test_gpa2hva_answers(text, value):
    assert guest_ram.parse_gpa2hva(text) == value


def test_process_memory_reads_across_chunks(tmp_path):
    """ProcessMemory on our own process: a buffer's address stands in for QEMU's host address."""
    import ctypes
    buf = ctypes.create_string_buffer(bytes(range(256)) * (guest_ram.CHUNK // 128))
    base = ctypes.addressof(buf)
    pa0 = 0x40000000

    def gpa2hva(pa):
        off = pa - pa0
        return f"Host virtual address for {pa:#x} (ram) is {base + off:#x}" if 0 <= off < len(buf) else "none"

    mem = guest_ram.ProcessMemory(os.getpid(), gpa2hva)
    try:
        assert mem.covers(pa0, 16) and not mem.covers(pa0 - 4096, 16)
        n = guest_ram.CHUNK - 8
        assert mem.read(pa0 + n, 16) == bytes(buf.raw[n:n + 16])   # crosses a 2 MiB chunk
        with pytest.raises(RkvmError, match="not guest RAM"):
            mem.read(pa0 - 16, 32)
    finally:
        mem.close()

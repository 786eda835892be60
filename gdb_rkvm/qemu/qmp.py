"""A small synchronous QMP client: QEMU's machine protocol (JSON, one object per line) over the session's
private Unix socket, for what the gdbstub cannot do while the guest runs (switching the exception log,
status, quit) and HMP commands that have no QMP equivalent (`human-monitor-command`).

Not QEMU's `qemu.qmp` package: that one is asyncio-based (GDB's embedded Python runs no event loop of
its own, and rkvm.py would need a loop per call) and would be one more pinned dependency for about a
hundred lines of protocol. One connection per call: QEMU's QMP chardev serves one client at a time,
so `rkvm` commands and GDB never keep it from each other.

Everything is bounded: connect, greeting and each reply by a deadline, a reply line by MAX_LINE bytes,
asynchronous events skipped (at most MAX_EVENTS per reply). Errors are one line (RkvmError).
"""

import json
import socket
import time

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape

MAX_LINE = 1 << 20
MAX_EVENTS = 10000


class QmpError(RkvmError):
    pass


class Qmp:
    """One QMP connection, capabilities negotiated. Use as a context manager."""

    def __init__(self, path: str, timeout: float = 5.0):
        self.path, self.timeout, self.buf, self.next_id = path, timeout, b"", 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.deadline = time.monotonic() + timeout
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            greeting = self._read()
            if not isinstance(greeting, dict) or "QMP" not in greeting:
                raise QmpError(f"{path}: not a QMP monitor (no greeting)")
            self.version = greeting["QMP"].get("version", {}).get("qemu", {}) if isinstance(greeting["QMP"], dict) \
                else {}
            self.execute("qmp_capabilities")
        except OSError as e:
            self.sock.close()
            raise QmpError(f"cannot reach QEMU's QMP socket at {path}: {e.strerror or e}") from None
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> object:
        while b"\n" not in self.buf:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise QmpError(f"QEMU's QMP socket at {self.path} did not answer within {self.timeout:g} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                raise QmpError(f"QEMU's QMP socket at {self.path}: {e.strerror or e}") from None
            if not chunk:
                raise QmpError(f"QEMU closed its QMP socket at {self.path}")
            self.buf += chunk
            if len(self.buf) > MAX_LINE and b"\n" not in self.buf:
                raise QmpError(f"QEMU's QMP socket at {self.path} sent a line longer than {MAX_LINE} bytes")
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise QmpError(f"QEMU's QMP socket at {self.path} sent something that is not JSON: "
                           f"{escape(line[:80].decode(errors='replace'))}") from None

    def execute(self, command: str, arguments: dict | None = None, timeout: float | None = None):
        """Run a QMP command; its "return" value. QmpError with QEMU's own description on an error."""
        self.next_id += 1
        msg = {"execute": command, "id": self.next_id}
        if arguments:
            msg["arguments"] = arguments
        self.deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as e:
            raise QmpError(f"QMP {command}: {e.strerror or e}") from None
        for _ in range(MAX_EVENTS):
            reply = self._read()
            if not isinstance(reply, dict) or "event" in reply:
                continue
            if reply.get("id") not in (None, self.next_id):
                continue
            if "error" in reply:
                err = reply["error"] if isinstance(reply["error"], dict) else {}
                raise QmpError(f"QMP {command}: {escape(str(err.get('desc', reply['error'])))}")
            if "return" in reply:
                return reply["return"]
        raise QmpError(f"QMP {command}: no reply among {MAX_EVENTS} events")

    def hmp(self, command_line: str) -> str:
        """A human monitor command (for what QMP has no command for: `log`, `logfile`, `gpa2hva`)."""
        if any(ord(c) < 0x20 for c in command_line):
            raise QmpError(f"HMP command refused (control characters): {escape(command_line)}")
        out = self.execute("human-monitor-command", {"command-line": command_line})
        return out if isinstance(out, str) else ""


def call(path: str, command: str, arguments: dict | None = None, timeout: float = 5.0):
    """One QMP command on a fresh connection."""
    with Qmp(path, timeout) as q:
        return q.execute(command, arguments)


def hmp(path: str, command_line: str, timeout: float = 5.0) -> str:
    with Qmp(path, timeout) as q:
        return q.hmp(command_line)


def status(path: str, timeout: float = 2.0) -> str:
    """'running', 'paused', 'prelaunch', 'shutdown'... (QMP query-status)."""
    r = call(path, "query-status", timeout=timeout)
    return str(r.get("status", "unknown")) if isinstance(r, dict) else "unknown"


def hmp_quote(text: str) -> str:
    """A string argument for an HMP command line: double-quoted with HMP's escapes, so a path with
    spaces or quotes stays one argument."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise QmpError(f"refused in an HMP command (control characters): {escape(text)}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'") + '"'

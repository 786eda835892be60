"""GDB/MI from the host: run gdb-multiarch with rkvm.py loaded and drive it with console commands.

Used by `rkvm triage` and the end-to-end tests. Every call has a time bound; close() always ends
GDB (the QEMU it is attached to belongs to the session, which its owner ends).
"""

import itertools
import json
import re
import shutil
import signal
import subprocess
import time

from pygdbmi.gdbcontroller import GdbController
from pygdbmi.IoManager import IoManager

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import REPO


class MiResult:
    """What one console command produced: its text, and the error message if it failed."""

    def __init__(self, command: str, output: str, error: str | None, records: list):
        self.command, self.output, self.error, self.records = command, output, error, records

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self):
        return f"MiResult({self.command!r}, ok={self.ok}, output={self.output[:200]!r}, error={self.error!r})"


def _mi_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _OwnGroupController(GdbController):
    """pygdbmi's controller, with GDB in a process group (session) of its own: a terminal's Ctrl-C goes
    to us only, and we pass GDB exactly one interrupt (a second one makes GDB give up on the target)."""

    def spawn_new_gdb_subprocess(self) -> int:
        if self.gdb_process:
            self.exit()
        self.gdb_process = subprocess.Popen(self.command, shell=False, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                            stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        self.io_manager = IoManager(self.gdb_process.stdin, self.gdb_process.stdout, self.gdb_process.stderr,
                                    self.time_to_check_for_additional_output_sec)
        return self.gdb_process.pid


class GdbMi:
    """A gdb-multiarch process under GDB/MI with rkvm.py sourced."""

    def __init__(self, extra_args: list[str] | None = None, load_rkvm: bool = True, startup_timeout: float = 60):
        exe = shutil.which("gdb-multiarch") or shutil.which("gdb")
        if exe is None:
            raise RkvmError("gdb-multiarch not found: run 'make setup'")
        argv = [exe, "--nx", "--quiet", "--interpreter=mi3"]
        if load_rkvm:
            argv += ["-x", str(REPO / "rkvm.py")]
        argv += extra_args or []
        self._tokens = itertools.count(100)
        self.controller = _OwnGroupController(command=argv, time_to_check_for_additional_output_sec=0.05)
        try:
            self.startup_output = self._drain_startup(startup_timeout)
        except BaseException:
            self.close()   # never leave a GDB behind when it does not come up in time
            raise

    def _drain_startup(self, timeout: float) -> str:
        # rkvm.py runs before GDB reads MI commands; a no-op command marks the end of its output.
        res = self.console("echo", timeout=timeout)
        early = [r for r in res.records if r.get("type") == "console"]
        return res.output + "".join(r["payload"] for r in early if r["payload"] not in res.output)

    def console(self, command: str, timeout: float = 30.0, interruptible: bool = False) -> MiResult:
        """Run a CLI command; wait (at most `timeout` s) for it to finish.

        A command that resumes the target gets `^running` as its MI result before it is done;
        then a no-op marker command is queued behind it, and its result marks the real end.
        interruptible=True: a Ctrl-C (KeyboardInterrupt) while waiting interrupts the target, as in GDB,
        and the command's own end is still awaited (`rkvm shell`'s `continue`).
        """
        deadline = time.monotonic() + timeout
        token = self._send(command)
        records: list = []
        self._wait(token, deadline, command, records, interruptible)
        result = records[-1]
        if result.get("message") == "running":
            marker = self._send("echo")
            self._wait(marker, deadline, command, records, interruptible)
            late = [r for r in records if r.get("type") == "result" and r.get("token") == token
                    and r.get("message") == "error"]
            # an error after ^running still comes back as ^error with the command's token
            result = late[-1] if late else records[-1]
        out = "".join(r["payload"] for r in records
                      if r.get("type") in ("console", "output", "target") and isinstance(r.get("payload"), str))
        error = result["payload"].get("msg") if result.get("message") == "error" else None
        return MiResult(command, out, error, records)

    def _wait(self, token: int, deadline: float, command: str, records: list, interruptible: bool) -> None:
        while True:
            try:
                self._until_result(token, deadline, command, records)
                return
            except KeyboardInterrupt:
                if not interruptible:
                    raise
                self.interrupt()
                deadline = max(deadline, time.monotonic() + 30)

    def _send(self, command: str) -> int:
        bad = _CONTROL.search(command)
        if bad:
            raise RkvmError(f"refused: a GDB command may not contain a control character ({bad.group()!r}): "
                            f"{command[:60]!r}")
        token = next(self._tokens)
        try:
            self.controller.write(f"{token}-interpreter-exec console {_mi_quote(command)}", read_response=False)
        except (OSError, ValueError) as e:
            raise RkvmError(f"GDB is gone ({e})") from None
        return token

    def _read(self, timeout: float) -> list:
        """The MI records GDB wrote within `timeout` seconds (maybe none)."""
        try:
            return self.controller.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        except (OSError, ValueError) as e:
            raise RkvmError(f"GDB is gone ({e})") from None

    def _until_result(self, token: int, deadline: float, command: str, records: list | None = None) -> list:
        """Read until the result record of `token` (appended last to `records`, which it returns)."""
        records = [] if records is None else records
        while True:
            batch = self._read(0.2)
            records += batch
            if any(r.get("type") == "result" and r.get("token") == token for r in batch):
                # keep the result record last, so callers find it at records[-1]
                res = [r for r in records if r.get("type") == "result" and r.get("token") == token][-1]
                records.remove(res)
                records.append(res)
                return records
            if self.controller.gdb_process is not None and self.controller.gdb_process.poll() is not None:
                raise RkvmError(f"GDB exited while running {command!r}")
            if time.monotonic() > deadline:
                raise RkvmError(f"{command!r} did not finish in time")

    def check(self, command: str, timeout: float = 30.0) -> str:
        """Run a command that must succeed; return its output."""
        res = self.console(command, timeout)
        if not res.ok:
            raise RkvmError(f"{command!r} failed: {res.error}")
        return res.output

    def json(self, command: str, timeout: float = 60.0) -> dict:
        """Run an rkvm command with --json (which must succeed); the object it printed."""
        out = self.check(command if "--json" in command.split() else f"{command} --json", timeout)
        try:
            return json.loads(out[out.index("{"):out.rindex("}") + 1])
        except ValueError:
            raise RkvmError(f"{command!r} printed no JSON object") from None

    def interrupt(self) -> None:
        """Stop the running target as Ctrl-C would: SIGINT to GDB (in synchronous MI, GDB reads no
        command while the target runs, so -exec-interrupt would wait behind the `continue`)."""
        proc = self.controller.gdb_process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    def run_for(self, seconds: float, grace: float = 10.0) -> dict:
        """`continue` for at most `seconds`; returns the *stopped record (reason, frame, thread).
        If the target stops by itself first (a breakpoint), that stop is returned."""
        token = self._send("continue")
        deadline = time.monotonic() + seconds
        interrupted = 0
        records = []
        while True:
            batch = self._read(0.1)
            records += batch
            for r in batch:
                if r.get("type") == "result" and r.get("token") == token and r.get("message") == "error":
                    raise RkvmError(f"continue failed: {r['payload'].get('msg')}")
                if r.get("type") == "notify" and r.get("message") == "stopped":
                    stop = dict(r.get("payload") or {})
                    stop["interrupted"] = bool(interrupted)
                    stop["output"] = "".join(x["payload"] for x in records if x.get("type") == "console"
                                             and isinstance(x.get("payload"), str))
                    return stop
            if self.controller.gdb_process is not None and self.controller.gdb_process.poll() is not None:
                raise RkvmError("GDB exited while the guest was running")
            now = time.monotonic()
            if now >= deadline + interrupted * 3.0:
                # a SIGINT that lands while GDB is busy (handling a breakpoint hit, resuming) can be
                # lost: send it again every 3 s until the grace period is over
                if interrupted and now >= deadline + grace:
                    raise RkvmError(f"the guest did not stop within {grace:g} s of an interrupt (is QEMU alive?)")
                self.interrupt()
                interrupted += 1

    def close(self) -> None:
        """End GDB: SIGTERM, then SIGKILL if it has not gone within 5 s (busy in a command)."""
        proc = self.controller.gdb_process
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            self.controller.exit()
        except Exception:  # already gone: nothing left to end
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Reading QEMU's exception log while the guest runs: which files, from where, how much (no GDB here).

A session's QEMU writes one file per vCPU thread (session.EXCEPTION_LOG, `-d tid`); those files are
created when a thread first logs and stay open in QEMU for its life, so a trace reads each from the
size it had when the trace began, and afterwards gives the disk blocks of what it read back to the
filesystem (a punched hole: sizes and QEMU's file positions stay as they are). Without per-thread files
(an older QEMU, or a QEMU someone else started) one file is named for the trace and removed after it.

Collector turns what was read into filtered events (exclog.py), bounded: at most `count` kept events,
MAX_EVENTS in any case, and MAX_BYTES of log read per trace; reaching any bound ends the trace.
"""

import ctypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from gdb_rkvm.model import exclog

MAX_EVENTS = 200_000
MAX_BYTES = 512 << 20
READ_CHUNK = 1 << 20
DRAIN_AFTER_STOP = 8 << 20   # read at most this much once the stop was asked (the returns of kept entries)

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 1, 2


def _punch(fd: int, length: int) -> None:
    """Free the disk blocks of [0, length) of a file QEMU keeps writing (best effort)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE | _FALLOC_FL_PUNCH_HOLE, ctypes.c_long(0), ctypes.c_long(length))
    except (OSError, AttributeError):
        pass


class LogFiles:
    """The exception log files of one trace, read incrementally."""

    def __init__(self, directory: Path, per_thread: bool, single: str = "exceptions.log"):
        self.directory, self.per_thread, self.single = Path(directory), per_thread, single
        self.offsets: dict[str, int] = {}
        self.fds: dict[str, int] = {}
        self.bytes_read = 0

    def _names(self) -> list[str]:
        if not self.per_thread:
            return [self.single]
        try:
            return sorted(n for n in os.listdir(self.directory) if n.startswith("exceptions.") and n[11:].isdigit())
        except OSError:
            return []

    def _open(self, name: str) -> int | None:
        if name not in self.fds:
            try:
                self.fds[name] = os.open(self.directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                return None
        return self.fds[name]

    def mark(self) -> None:
        """Start here: what the files hold now belongs to earlier traces."""
        for name in self._names():
            fd = self._open(name)
            if fd is not None:
                self.offsets[name] = os.fstat(fd).st_size

    def poll(self, budget: int = READ_CHUNK) -> list[tuple[str, bytes]]:
        out = []
        for name in self._names():
            fd = self._open(name)
            if fd is None:
                continue
            start = self.offsets.setdefault(name, 0)
            try:
                data = os.pread(fd, budget, start)
            except OSError:
                continue
            if data:
                self.offsets[name] = start + len(data)
                self.bytes_read += len(data)
                out.append((name, data))
        return out

    def unread(self) -> int:
        """Bytes written to the files after what was read (skipped: past the stop, or past a bound)."""
        total = 0
        for name in self._names():
            fd = self._open(name)
            if fd is not None:
                total += max(0, os.fstat(fd).st_size - self.offsets.get(name, 0))
        return total

    def release(self) -> None:
        for name, fd in self.fds.items():
            os.close(fd)
            if self.per_thread and self.offsets.get(name):
                try:
                    wfd = os.open(self.directory / name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    continue
                _punch(wfd, self.offsets[name] & ~0xFFF)
                os.close(wfd)
        self.fds.clear()
        if not self.per_thread:
            try:
                os.unlink(self.directory / self.single)
            except OSError:
                pass


@dataclass
class Collector:
    """Raw log bytes -> the events a trace keeps, until a bound."""

    flt: exclog.Filter
    count: int | None = None            # stop after this many kept events
    per_cpu_streams: bool = True
    keep_returns: bool = True
    events: list = field(default_factory=list)
    seen: int = 0                       # every event parsed, kept or not
    entries: int = 0                    # kept entries: what --count counts (a return is the second half of one)
    stopped_by: str = ""

    def __post_init__(self):
        self.kept: set[int] = set()
        self.parsers: dict[str, exclog.StreamParser] = {}
        self.timeline = exclog.Timeline(self.per_cpu_streams)

    def feed(self, stream: str, data: bytes) -> None:
        parser = self.parsers.setdefault(stream, exclog.StreamParser())
        for ev in self.timeline.add(stream, parser, parser.feed(data)):
            self._take(ev)

    def _take(self, ev) -> None:
        self.seen += 1
        if not self.flt.keep(ev):
            return
        if isinstance(ev, exclog.Return):
            # after the bound, only the returns of entries already kept (the other half of them)
            if not self.keep_returns or len(self.events) >= 2 * MAX_EVENTS:
                return
            if self.done and (ev.entry is None or id(ev.entry) not in self.kept):
                return
            self.events.append(ev)
            return
        if self.done:
            return
        self.events.append(ev)
        self.kept.add(id(ev))
        self.entries += 1
        if self.count is not None and self.entries >= self.count:
            self.stopped_by = f"{self.count} events"
        elif self.entries >= MAX_EVENTS:
            self.stopped_by = f"the {MAX_EVENTS}-event bound"

    def finish(self) -> None:
        for ev in self.timeline.flush():
            self._take(ev)

    @property
    def done(self) -> bool:
        return bool(self.stopped_by)

    @property
    def dropped(self) -> int:
        return sum(p.dropped for p in self.parsers.values())


def tail(files: LogFiles, collector: Collector, finished, on_done, deadline_passed, poll: float = 0.02) -> None:
    """Read the files into the collector while the guest runs. When the collector is done or the
    deadline passed: on_done() once (it stops the guest), then read at most DRAIN_AFTER_STOP more
    (what the kept entries' returns need), and return once finished() (the guest is stopped and the log
    off). What is left unread is counted by files.unread(). A thread's body: no GDB calls in here."""
    signalled_at = None
    while True:
        chunks = []
        if signalled_at is None or files.bytes_read - signalled_at < DRAIN_AFTER_STOP:
            chunks = files.poll()
        for stream, data in chunks:
            collector.feed(stream, data)
        if files.bytes_read >= MAX_BYTES and not collector.done:
            collector.stopped_by = f"the {MAX_BYTES >> 20} MiB log bound"
        if signalled_at is None and (collector.done or deadline_passed()):
            signalled_at = files.bytes_read
            on_done()
        if finished() and not chunks:
            return
        if not chunks:
            time.sleep(poll)

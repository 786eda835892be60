"""EL transitions from QEMU's own exception log, inside GDB: no breakpoint, no stop per exception.

trace() switches the log on (QMP `human-monitor-command "log int"`; the gdbstub's `monitor` when the
session has no QMP socket), continues the guest, reads the log in a thread as QEMU writes it, stops the
guest (QMP `stop`, else SIGINT) once enough was seen or the time is up, switches the log off, reads the
rest, and symbolizes what it kept. Register values the log does not carry (x0..x7, the returned x0) are
the breakpoint paths' job (`--args`).

Order: exact within a CPU (one log file per vCPU thread); across CPUs, the order in which the files
were read, which is close but not exact (no timestamps in the log).
"""

import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gdb

from gdb_rkvm.model import exception_trace, exclog

from gdb_rkvm.qemu import qmp
from gdb_rkvm.arch import esr, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.live.gdb_state import STATE, command_settings
from gdb_rkvm.live.resume import Deadline, continue_until


@dataclass(frozen=True)
class Event:
    """One logged transition with names: ELR and the target PC symbolized, the ESR decoded."""

    event: object                      # exclog.Entry or exclog.Return
    elr_symbol: str | None = None      # entries: where the exception was taken from
    pc_symbol: str | None = None       # entries: the vector (VBAR + slot); returns: where ERET went
    esr_summary: str = ""
    slot: str = ""
    caller_symbol: str | None = None   # HVC/SMC/SVC: the instruction itself (ELR - 4)

    def to_dict(self) -> dict:
        ev = self.event
        d = {"kind": ev.kind, "cpu": ev.cpu, "seq": ev.seq, "class": ev.cls, "inferred": ev.inferred}
        if isinstance(ev, exclog.Entry):
            d.update(exception=ev.name, number=ev.number, from_el=ev.from_el, to_el=ev.to_el, esr=ev.esr,
                     esr_summary=self.esr_summary, imm16=ev.imm16, elr=ev.elr, elr_symbol=self.elr_symbol,
                     far=ev.far, pc=ev.pc, pc_symbol=self.pc_symbol, vbar=ev.vbar, slot_offset=ev.slot_offset,
                     slot=self.slot, pstate=ev.pstate, psci_by_qemu=ev.psci, caller_symbol=self.caller_symbol)
        else:
            d.update(from_el=ev.from_el, to_el=ev.to_el, pc=ev.pc, pc_symbol=self.pc_symbol, aarch32=ev.aarch32,
                     illegal=ev.illegal, entry_seq=ev.entry.seq if ev.entry is not None else None)
        return d


@dataclass
class TraceResult:
    events: list = field(default_factory=list)     # Event
    seconds: float = 0.0
    seen: int = 0                                  # every exception and return logged, kept or not
    stopped_by: str = ""
    dropped_lines: int = 0
    per_cpu_files: bool = True                     # False: one shared file, CPU of returns inferred
    log_bytes: int = 0                             # log read
    log_unread: int = 0                            # log written after the stop was asked, not read


class _Control:
    """Switching the log and stopping the guest: QMP when the session has it, else the gdbstub."""

    def __init__(self, sess):
        self.sess = sess
        self.qmp = sess.qmp_socket if sess.qmp_socket and not sess.external else ""
        self.per_thread = bool(sess.exception_log) and not sess.external
        self.tmp = None
        if self.per_thread:
            self.directory = Path(sess.exception_log).parent
        else:   # one file named for this trace, in a private directory
            self.tmp = tempfile.mkdtemp(prefix="rkvm-log-")
            self.directory = Path(self.tmp)

    def hmp(self, line: str) -> str:
        if self.qmp:
            return qmp.hmp(self.qmp, line)
        try:
            return gdb.execute(f"monitor {line}", to_string=True)
        except gdb.error as e:
            raise RkvmError(f"QEMU's monitor: {e}") from None

    def on(self) -> None:
        if not self.per_thread:
            out = self.hmp(f"logfile {qmp.hmp_quote(str(self.directory / 'exceptions.log'))}")
            if out.strip():
                raise RkvmError(f"QEMU refused the log file: {out.strip()}")
        out = self.hmp("log int")
        if out.strip():
            raise RkvmError(f"QEMU refused 'log int': {out.strip()}")

    def off(self) -> None:
        try:
            self.hmp("log none")
        except RkvmError:
            pass

    def stop_guest(self) -> None:
        """From the reading thread: stop the guest (GDB sees a SIGINT stop)."""
        if self.qmp:
            try:
                qmp.call(self.qmp, "stop", timeout=2.0)
                return
            except RkvmError:
                pass
        os.kill(os.getpid(), signal.SIGINT)

    def cleanup(self) -> None:
        if self.tmp:
            try:
                os.rmdir(self.tmp)
            except OSError:
                pass


def trace(flt: exclog.Filter, count: int | None, seconds: float, keep_returns: bool = True) -> TraceResult:
    """Run the guest with the exception log on until `count` kept entries or `seconds`; the events kept."""
    sess = STATE.session
    if sess is None:
        raise RkvmError("no session: the exception log is QEMU's, reached through the session")
    control = _Control(sess)
    files = exception_trace.LogFiles(control.directory, control.per_thread)
    collector = exception_trace.Collector(flt, count, per_cpu_streams=control.per_thread, keep_returns=keep_returns)
    deadline = Deadline(seconds)
    finished = threading.Event()
    reader = threading.Thread(target=exception_trace.tail, daemon=True,
                              args=(files, collector, finished.is_set, control.stop_guest, deadline.passed))
    start = time.monotonic()
    try:
        files.mark()
        control.on()
        reader.start()
        # the guest is stopped by us (QMP stop, or SIGINT): not a stop to report with its frame
        with command_settings({"suppress-cli-notifications": "on"}):
            continue_until(deadline, grace=1.0)
    finally:
        elapsed = time.monotonic() - start
        control.off()
        finished.set()
        if reader.ident is not None:
            reader.join(timeout=60)
        collector.finish()
        unread = files.unread()
        files.release()
        control.cleanup()
    stopped_by = collector.stopped_by or ("time" if deadline.passed() else "the guest stopped")
    result = TraceResult(seconds=elapsed, seen=collector.seen, stopped_by=stopped_by,
                         dropped_lines=collector.dropped, per_cpu_files=control.per_thread,
                         log_bytes=files.bytes_read, log_unread=unread)
    result.events = symbolize(collector.events)
    return result


def symbolize(events: list) -> list[Event]:
    """Names for ELR and target PCs (kernel VAs through GDB's symbols, EL2 and early-boot PAs through
    the EL2 landmarks), each address looked up once."""
    vbars = sorted({e.vbar for e in events if isinstance(e, exclog.Entry) and e.to_el == 2 and e.vbar})
    try:
        marks = kernel_facts.landmarks(vbars)
    except (RkvmError, gdb.error):
        marks = None
    cache: dict[int, str | None] = {}

    def name(addr: int | None) -> str | None:
        if addr is None:
            return None
        if addr not in cache:
            try:
                sym = t.symbol_at(addr)
                if sym is None and marks is not None and addr < 1 << 48:
                    sym = kernel_facts.el2_symbol(addr, marks)
            except (RkvmError, gdb.error):
                sym = None
            cache[addr] = sym
        return cache[addr]

    out = []
    for ev in events:
        if isinstance(ev, exclog.Entry):
            summary = esr.decode(ev.esr).summary if ev.esr is not None else ev.name
            slot = vectors.slot_name(ev.slot_offset) if ev.slot_offset is not None else ""
            caller = name(ev.elr - 4) if ev.cls in ("hvc", "smc", "svc") and ev.elr else None
            out.append(Event(ev, name(ev.elr), name(ev.pc), summary, slot, caller))
        else:
            out.append(Event(ev, None, name(ev.pc)))
    return out

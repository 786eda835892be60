"""QEMU's exception log (`-d int`, or `log int` in its monitor), parsed into typed events.

QEMU (target/arm, 7.2) writes, for every exception it delivers:

    Taking exception 11 [Hypervisor Call] on CPU 0
    ...from EL1 to EL2
    ...with ESR 0x16/0x5a00004b
    ...with FAR 0x...                 (aborts only)
    ...with ELR 0xffff800080016d24
    ...to EL2 PC 0x4046e400 PSTATE 0x3c9

(`...handled as PSCI call` instead of the last two when QEMU itself answers an SMC or HVC as the
PSCI firmware), and for every ERET:

    Exception return from AArch64 EL2 to AArch64 EL1 PC 0xffff800080016d24

which names no CPU. Each line is written whole, but with several TCG threads writing one file the
lines of two CPUs' records can interleave. Sessions avoid that with one file per vCPU thread (QEMU's
`-d tid`): a stream then holds one CPU, in order, and its returns are that CPU's. For a stream that
holds several CPUs (one shared file: `--attach`, or `-accel tcg,thread=single`), continuation lines go
to the oldest record still waiting for that line, and a return goes to the CPU whose open entry it
matches (same EL, and ELR equal to the return's PC when that decides it); such events are marked
`inferred`.

The log is written by QEMU but its content follows the guest; it is parsed with bounds: lines longer
than MAX_LINE are dropped, numbers are at most 64 bits, CPU numbers below 4096, at most MAX_PENDING
records open per stream. Pure: no GDB.
"""

import re
from dataclasses import dataclass, field

from gdb_rkvm.arch import esr as esr_mod

MAX_LINE = 256          # the longest line QEMU writes here is under 90 bytes
MAX_PENDING = 64        # entry records waiting for their continuation lines, per stream
MAX_DEPTH = 16          # open entries per CPU (exceptions nest: EL0 -> EL1 -> EL2)
MAX_CPU = 4096

_HEX = r"0x([0-9a-fA-F]{1,16})"
_TAKING = re.compile(r"Taking exception (\d{1,4}) \[([ -~]{0,48}?)\](?: on CPU (\d{1,4}))?")
_FROM = re.compile(r"\.\.\.from EL([0-3]) to EL([0-3])")
_ESR = re.compile(r"\.\.\.with ESR 0x([0-9a-fA-F]{1,8})/" + _HEX)
_FAR = re.compile(r"\.\.\.with FAR " + _HEX)
_ELR = re.compile(r"\.\.\.with ELR " + _HEX)
_TO = re.compile(r"\.\.\.to EL([0-3]) PC " + _HEX + r" PSTATE 0x([0-9a-fA-F]{1,8})")
_PSCI = "...handled as PSCI call"
_CONTINUATIONS = {"from": _FROM, "esr": _ESR, "far": _FAR, "elr": _ELR, "to": _TO}
_CONTINUATION_KIND = {"from": "from", "to E": "to"}
_WITH = {"ESR": "esr", "FAR": "far", "ELR": "elr"}
_RETURN = re.compile(r"Exception return from AArch(64|32) EL([0-3]) to AArch(64|32) EL([0-3]) PC " + _HEX)
_ILLEGAL = re.compile(r"Illegal exception return at EL([0-3]): resuming execution at " + _HEX)

_ASYNC = {"IRQ": "irq", "Virtual IRQ": "irq", "FIQ": "fiq", "Virtual FIQ": "fiq", "Virtual SERR": "serror"}
_EC_CLASS = {0x16: "hvc", 0x12: "hvc", 0x17: "smc", 0x13: "smc", 0x15: "svc", 0x11: "svc", 0x24: "dabt",
             0x25: "dabt", 0x20: "iabt", 0x21: "iabt", 0x18: "sysreg", 0x01: "wfx", 0x3C: "brk", 0x38: "brk",
             0x00: "undef", 0x0E: "illegal", 0x2F: "serror", 0x22: "align", 0x26: "align"}
for _ec in range(0x30, 0x36):
    _EC_CLASS[_ec] = "debug"
CLASSES = ("hvc", "smc", "svc", "dabt", "iabt", "irq", "fiq", "serror", "sysreg", "wfx", "brk", "undef",
           "debug", "align", "illegal", "other")


@dataclass(slots=True, eq=False)
class Entry:
    """One exception taken, as QEMU logged it. Fields QEMU did not write are None. Made by StreamParser,
    numbered by Timeline (seq), never changed after that."""

    cpu: int
    number: int                 # QEMU's exception index (11 = EXCP_HVC...)
    name: str                   # QEMU's name for it ("Hypervisor Call")
    from_el: int | None = None
    to_el: int | None = None
    esr: int | None = None      # None for interrupts: QEMU prints a stale syndrome for them
    far: int | None = None
    elr: int | None = None
    pc: int | None = None       # where the CPU went: VBAR_ELx + slot
    pstate: int | None = None
    psci: bool = False          # answered by QEMU as PSCI firmware: no guest vector was entered
    inferred: bool = False      # assembled from interleaved lines of several CPUs
    seq: int = 0                # order within its CPU (exact), from 1

    kind = "entry"   # class attributes (slots): not fields

    @property
    def ec(self) -> int | None:
        return esr_mod.exception_class(self.esr) if self.esr is not None else None

    @property
    def cls(self) -> str:
        if self.name in _ASYNC:
            return _ASYNC[self.name]
        return _EC_CLASS.get(self.ec, "other") if self.ec is not None else "other"

    @property
    def imm16(self) -> int | None:
        """The immediate of an HVC, SMC, SVC or BRK (ESR.ISS[15:0])."""
        return self.esr & 0xFFFF if self.cls in ("hvc", "smc", "svc", "brk") and self.esr is not None else None

    @property
    def vbar(self) -> int | None:
        """VBAR of the target EL at the time (vector tables are 2 KiB aligned)."""
        return self.pc & ~0x7FF if self.pc is not None else None

    @property
    def slot_offset(self) -> int | None:
        return self.pc & 0x780 if self.pc is not None else None


@dataclass(slots=True, eq=False)
class Return:
    """One exception return (ERET). cpu, entry, inferred and seq are filled in by Timeline."""

    cpu: int | None
    from_el: int
    to_el: int
    pc: int
    aarch32: bool = False
    illegal: bool = False
    entry: Entry | None = None  # the entry this returns from, when the trace saw it
    inferred: bool = False      # CPU attributed by matching (a stream shared by several CPUs)
    seq: int = 0

    kind = "return"

    @property
    def cls(self) -> str:
        return self.entry.cls if self.entry is not None else ""


@dataclass
class _Pending:
    cpu: int
    number: int
    name: str
    fields: dict = field(default_factory=dict)
    inferred: bool = False

    def next_field(self) -> str:
        for f in ("from", "esr", "elr", "to"):
            if f not in self.fields:
                return f
        return "to"


def _int(text: str) -> int:
    return int(text, 16)


class StreamParser:
    """Lines of one log stream (a file, or one per-thread file) -> raw events in that stream's order.
    feed() takes bytes as they arrive (a partial last line is kept, bounded)."""

    def __init__(self):
        self.partial = b""
        self.skipping = False   # inside a line longer than MAX_LINE: dropped up to its newline
        self.pending: list[_Pending] = []
        self.cpus: set[int] = set()
        self.dropped = 0        # lines too long, or not understood

    def feed(self, data: bytes) -> list:
        out = []
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            if self.skipping:
                self.skipping = False
                self.dropped += 1
                continue
            if len(raw) > MAX_LINE:
                self.dropped += 1
                continue
            out.extend(self.line(raw.decode("ascii", errors="replace").rstrip("\r")))
        if len(self.partial) > MAX_LINE:
            self.partial, self.skipping = b"", True
        return out

    def line(self, text: str) -> list:
        if text.startswith("Taking exception "):
            m = _TAKING.fullmatch(text)
            if not m:
                self.dropped += 1
                return []
            cpu = int(m.group(3)) if m.group(3) else (min(self.cpus) if len(self.cpus) == 1 else 0)
            if cpu >= MAX_CPU:
                self.dropped += 1
                return []
            out = []
            self.cpus.add(cpu)
            # a record of the same CPU still open never got its last line: emit it as it is
            for p in [p for p in self.pending if p.cpu == cpu]:
                self.pending.remove(p)
                out.append(self._entry(p))
            if len(self.pending) >= MAX_PENDING:
                out.append(self._entry(self.pending.pop(0)))
            self.pending.append(_Pending(cpu, int(m.group(1)), m.group(2)))
            if len(self.pending) > 1:   # records of several CPUs open at once: lines may go to either
                for p in self.pending:
                    p.inferred = True
            return out
        if text.startswith("..."):
            return self._continuation(text)
        m = _RETURN.fullmatch(text)
        if m:
            return [Return(None, int(m.group(2)), int(m.group(4)), _int(m.group(5)), aarch32=m.group(3) == "32")]
        m = _ILLEGAL.fullmatch(text)
        if m:
            el = int(m.group(1))
            return [Return(None, el, el, _int(m.group(2)), illegal=True)]
        if text:
            self.dropped += 1
        return []

    def _continuation(self, text: str) -> list:
        if text == _PSCI:
            kind, m = "psci", None
        else:
            head = text[3:7]
            kind = _WITH.get(text[8:11]) if head == "with" else _CONTINUATION_KIND.get(head)
            if kind is None:
                return []   # AArch32 details and other lines this parser does not use
            m = _CONTINUATIONS[kind].fullmatch(text)
            if m is None:
                self.dropped += 1
                return []
        if not self.pending:
            self.dropped += 1
            return []
        want = {"far": "elr", "psci": "elr"}.get(kind, kind)
        target = next((p for p in self.pending if p.next_field() == want), None)
        if target is None:   # nobody waits for this line: lines were lost or went to another record
            target = self.pending[0]
            target.inferred = True
        if kind == "from":
            target.fields["from"] = (int(m.group(1)), int(m.group(2)))
        elif kind == "esr":
            target.fields["esr"] = _int(m.group(2)) & 0xFFFFFFFF
        elif kind == "far":
            target.fields["far"] = _int(m.group(1))
        elif kind == "elr":
            target.fields["elr"] = _int(m.group(1))
        elif kind == "to":
            target.fields["to"] = (int(m.group(1)), _int(m.group(2)), _int(m.group(3)))
        if kind in ("to", "psci"):
            self.pending.remove(target)
            return [self._entry(target, psci=kind == "psci")]
        return []

    def _entry(self, p: _Pending, psci: bool = False) -> Entry:
        f = p.fields
        frm, to = f.get("from", (None, None)), f.get("to", (None, None, None))
        esr = None if p.name in _ASYNC else f.get("esr")
        return Entry(cpu=p.cpu, number=p.number, name=p.name, from_el=frm[0], to_el=frm[1] if to[0] is None else to[0],
                     esr=esr, far=f.get("far"), elr=f.get("elr"), pc=to[1], pstate=to[2], psci=psci,
                     inferred=p.inferred)


class Timeline:
    """Raw events of several streams -> events with CPUs, per-CPU sequence numbers and returns paired
    with the entries they return from.

    per_cpu_streams: each stream holds one CPU (QEMU's per-thread log files under MTTCG). A stream
    that turns out to hold several is handled as a shared one from then on."""

    def __init__(self, per_cpu_streams: bool = True):
        self.per_cpu = per_cpu_streams
        self.stack: dict[int, list[Entry]] = {}      # open entries per CPU
        self.arrival: dict[int, int] = {}            # id(entry) -> arrival order across all streams
        self.order = 0
        self.seq: dict[int, int] = {}
        self.held: dict[object, list[Return]] = {}   # returns seen before the stream named its CPU

    def _next_seq(self, cpu: int | None) -> int:
        key = -1 if cpu is None else cpu
        self.seq[key] = self.seq.get(key, 0) + 1
        return self.seq[key]

    def add(self, stream, parser: StreamParser, events: list) -> list:
        out = []
        for ev in events:
            if isinstance(ev, Entry):
                if stream in self.held and self.per_cpu and len(parser.cpus) == 1:
                    for r in self.held.pop(stream):
                        out.append(self._return(r, ev.cpu, False))
                ev.seq = self._next_seq(ev.cpu)
                if not ev.psci:
                    st = self.stack.setdefault(ev.cpu, [])
                    st.append(ev)
                    self.order += 1
                    self.arrival[id(ev)] = self.order
                    for old in st[:-MAX_DEPTH]:
                        self.arrival.pop(id(old), None)
                    del st[:-MAX_DEPTH]
                out.append(ev)
                continue
            if self.per_cpu and len(parser.cpus) == 1:
                out.append(self._return(ev, next(iter(parser.cpus)), False))
            elif self.per_cpu and not parser.cpus:
                held = self.held.setdefault(stream, [])
                if len(held) < MAX_PENDING:
                    held.append(ev)
                else:
                    out.append(self._return(ev, None, False))
            else:
                cpu = self._match(ev)
                out.append(self._return(ev, cpu, True))
        return out

    def flush(self) -> list:
        """Returns still held (a stream that never named its CPU), with no CPU."""
        out = []
        for held in self.held.values():
            out.extend(self._return(r, None, False) for r in held)
        self.held.clear()
        return out

    def _match(self, ev: Return) -> int | None:
        candidates = [c for c, st in self.stack.items() if st and st[-1].to_el == ev.from_el]
        exact = [c for c in candidates if self.stack[c][-1].elr == ev.pc]
        pick = exact or candidates
        if not pick:
            return None
        return min(pick, key=lambda c: (self.arrival.get(id(self.stack[c][-1]), 0), c))

    def _return(self, ev: Return, cpu: int | None, inferred: bool) -> Return:
        entry = None
        if cpu is not None:
            st = self.stack.get(cpu, [])
            for i in range(len(st) - 1, -1, -1):
                if st[i].to_el == ev.from_el:
                    entry = st[i]
                    for gone in st[i:]:
                        self.arrival.pop(id(gone), None)
                    del st[i:]
                    break
        ev.cpu, ev.entry, ev.inferred, ev.seq = cpu, entry, inferred, self._next_seq(cpu)
        return ev


@dataclass(frozen=True)
class Filter:
    """Which events a trace keeps."""

    el2_only: bool = False
    classes: frozenset = frozenset()
    cpu: int | None = None
    imm: int | None = None      # HVC/SMC/SVC immediate (a return: its entry's)

    def keep(self, ev) -> bool:
        if self.cpu is not None and ev.cpu != self.cpu:
            return False
        if self.imm is not None:
            entry = ev if isinstance(ev, Entry) else ev.entry
            if entry is None or entry.imm16 != self.imm:
                return False
        if self.el2_only:
            if isinstance(ev, Entry) and ev.to_el != 2:
                return False
            if isinstance(ev, Return) and ev.from_el != 2:
                return False
        if self.classes and ev.cls not in self.classes:
            return False
        return True


def parse_text(text: str, per_cpu_streams: bool = False) -> list:
    """A whole log as one stream: every event, in order (for tests and files read after the fact)."""
    parser, tl = StreamParser(), Timeline(per_cpu_streams)
    events = tl.add(0, parser, parser.feed(text.encode("ascii", errors="replace") + b"\n"))
    return events + tl.flush()

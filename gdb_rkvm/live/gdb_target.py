"""Reading the QEMU guest from inside GDB: registers by architectural name, per vCPU, and memory
(virtual, or physical), without disturbing the user's thread and frame.

Physical reads have one interface (read_physical, physical_reader) and two backends: guest RAM read
directly (the session's RAM file, or QEMU's own memory for --attach: physmem.py) where it covers the
range, QEMU's gdbstub in physical mode (PhyMemMode) otherwise. One caching rule for both: everything
read while the target is stopped is kept in STATE.stop_cache, cleared when the target resumes or stops
and when GDB writes memory or registers (gdb_state.GdbState). The RAM file is mapped read-only: every
write goes through GDB, so GDB's own cache and ours see it.
"""

import contextlib
import re

import gdb

from gdb_rkvm.arch import pstate, regfields
from gdb_rkvm.arch.fields import MASK64
from gdb_rkvm.model import stub_abi, symbol_names
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live.gdb_state import STATE



_REGISTER_NAMES: dict[str, set[str]] = {}   # per GDB architecture: fixed for the life of the connection
_SPELLING: dict[tuple[str, str], str | None] = {}


def _qemu_register_names() -> set[str]:
    arch = gdb.newest_frame().architecture()
    names = _REGISTER_NAMES.get(arch.name())
    if names is None:
        names = _REGISTER_NAMES[arch.name()] = {r.name for r in arch.registers()}
    return names


def register_spelling(name: str) -> str | None:
    """The name this QEMU's gdbstub uses for architectural register `name`, or None.

    QEMU 7.2 calls some EL1 registers by their AArch32 names (SCTLR_EL1 is SCTLR, VBAR_EL1 is
    VBAR, AMAIR_EL1 is AMAIR0); other versions may not, so the target's own list decides.
    """
    names = _qemu_register_names()
    key = (str(len(names)), name.upper())
    if key in _SPELLING:
        return _SPELLING[key]
    _SPELLING[key] = _spell(names, name)
    return _SPELLING[key]


def _spell(names: set[str], name: str) -> str | None:
    upper = {n.upper(): n for n in names}
    base = name.upper()
    candidates = [base]
    if base.endswith("_EL1"):
        candidates += [base[:-4], base[:-4] + "0"]
    if base in ("CPSR", "PSTATE"):
        candidates = ["CPSR"]
    for c in candidates:
        if c in upper:
            return upper[c]
    return None


def cpu_threads() -> list[tuple[int, gdb.InferiorThread]]:
    """(cpu index, thread) for every vCPU, CPU order. QEMU numbers threads 1.1 = CPU#0, 1.2 = CPU#1..."""
    inferior = gdb.selected_inferior()
    threads = sorted(inferior.threads(), key=lambda t: t.ptid[1])
    return [(t.ptid[1] - 1, t) for t in threads]


def thread_for_cpu(cpu: int | None) -> gdb.InferiorThread:
    """The thread of vCPU `cpu` (the selected one if None); a clear error for a CPU that is not there."""
    if cpu is None:
        thread = gdb.selected_thread()
        if thread is None:
            raise RkvmError("no thread selected")
        return thread
    for n, t in cpu_threads():
        if n == cpu:
            return t
    raise RkvmError(f"no CPU {cpu} (CPUs: {', '.join(str(n) for n, _ in cpu_threads())})")


def cpu_of(thread: gdb.InferiorThread) -> int:
    return thread.ptid[1] - 1


@contextlib.contextmanager
def on_thread(thread: gdb.InferiorThread):
    """Run a block with `thread` selected, then give the user back their thread and frame."""
    previous = gdb.selected_thread()
    try:
        frame = gdb.selected_frame()
        level = frame.level()
    except gdb.error:
        level = None
    if previous is not None and previous.ptid == thread.ptid:
        yield
        return
    thread.switch()
    try:
        yield
    finally:
        if previous is not None and previous.is_valid():
            previous.switch()
            if level:
                with contextlib.suppress(gdb.error):
                    gdb.execute(f"frame {level}", to_string=True)


def read_register(name: str, cpu: int | None = None) -> int:
    """Architectural register `name` (x0, pc, SCTLR_EL1, VBAR_EL2...) of vCPU `cpu`, as an unsigned int."""
    thread = thread_for_cpu(cpu)
    key = ("reg", thread.ptid, name.upper())
    if key in STATE.stop_cache:
        return STATE.stop_cache[key]
    if name.upper() == "CURRENTEL":  # not a gdbstub register: PSTATE.EL is in cpsr[3:2]
        value = pstate.currentel_value(read_register("cpsr", cpu))
    else:
        gpr = re.fullmatch(r"(x\d+|sp|pc|cpsr)", name, re.I)
        spelled = name.lower() if gpr else register_spelling(name)
        if spelled is None:
            raise RkvmError(f"{name} is not among the registers this QEMU's gdbstub exposes")
        with on_thread(thread):
            value = int(gdb.newest_frame().read_register(spelled)) & MASK64
    STATE.stop_cache[key] = value
    return value


def read_current(names: list[str]) -> dict[str, int]:
    """Registers of the selected thread, read straight from its newest frame: the fast path for
    breakpoints that decide in stop() (no thread switching, no cache)."""
    frame = gdb.newest_frame()
    out = {}
    for name in names:
        gpr = re.fullmatch(r"(x\d+|sp|pc|cpsr)", name, re.I)
        spelled = name.lower() if gpr else register_spelling(name)
        if spelled is None:
            raise RkvmError(f"{name} is not among the registers this QEMU's gdbstub exposes")
        out[name] = int(frame.read_register(spelled)) & MASK64
    return out


def current_el(cpu: int | None = None) -> int:
    return pstate.current_el_from_cpsr(read_register("cpsr", cpu))


def _check_range(addr: int, size: int, what: str) -> None:
    """Guest-supplied addresses (rkvm_debug.stub_pa, VBAR_EL2 + offsets) can run past 2^64: GDB
    would raise OverflowError. Say it in one line instead."""
    if addr < 0 or size < 0 or addr + size > 1 << 64:
        raise RkvmError(f"cannot read {size} bytes at {what} {addr:#x}: past the end of the 64-bit address space")


def in_guest(cpu: int | None = None) -> bool:
    """Whether `cpu` runs the lab's guest: HCR_EL2.VM = 1 (the stub's world switch sets it only for the
    guest), so its live EL1 registers (TTBR1_EL1...) are the guest's, not the kernel's. False when
    HCR_EL2 cannot be read (a gdbstub without EL2 registers has no guest either)."""
    try:
        return regfields.stage2_enabled(read_register("HCR_EL2", cpu))
    except RkvmError:
        return False


def sees_kernel(cpu: int | None = None) -> bool:
    """Whether GDB's reads through `cpu` see kernel virtual memory: at EL1, in the host."""
    return current_el(cpu) == 1 and not in_guest(cpu)


def cpu_at_el1() -> int | None:
    """The first vCPU at EL1 in the host (where the kernel's virtual addresses translate), or None."""
    for n, _ in cpu_threads():
        if sees_kernel(n):
            return n
    return None


def host_cpu() -> int | None:
    """A vCPU whose live EL1 registers are the kernel's (not in the guest), the selected one first."""
    thread = gdb.selected_thread()
    order = ([cpu_of(thread)] if thread is not None else []) + [n for n, _ in cpu_threads()]
    for n in order:
        if not in_guest(n):
            return n
    return None


def evaluate_in_kernel_view(evaluate, expression: str):
    """`evaluate()` (a GDB expression evaluation) as the kernel sees memory.

    GDB reads memory through the selected vCPU's current regime; at EL2 (MMU off) a kernel VA is
    read as a physical address and fails. Then the expression is evaluated again with a CPU at EL1
    selected (kernel memory is the same on every CPU), unless it names a register ($...), whose
    value would then be another CPU's."""
    try:
        return evaluate()
    except gdb.MemoryError:
        thread = gdb.selected_thread()
        if thread is None or sees_kernel(cpu_of(thread)):
            raise
        here = cpu_of(thread)
        why = "from the guest (HCR_EL2.VM = 1: its EL1 registers are the guest's)" if in_guest(here) else \
            "from EL2 (MMU off)"
        other = cpu_at_el1()
        if other is None:
            raise RkvmError(f"'{expression}' reads kernel memory, and no CPU is at EL1 in the host (at EL2 the MMU "
                            "is off: addresses are physical there; in the guest EL1 is the guest's); step one back "
                            "to the kernel first ('rkvm step-el2')") from None
        if "$" in expression:
            raise RkvmError(f"'{expression}' reads kernel memory, which CPU {here} cannot see {why}; "
                            f"select CPU {other}, at EL1 in the host, with 'thread {other + 1}'") from None
        with on_thread(thread_for_cpu(other)):
            return evaluate()


def read_virtual(addr: int, size: int) -> bytes:
    """Bytes at a virtual address, translated by the selected vCPU's current regime."""
    _check_range(addr, size, "VA")
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, size))
    except gdb.MemoryError:
        raise RkvmError(f"cannot read {size} bytes at VA {addr:#x} (not mapped in this CPU's current regime)") from None


def _phys_mode_packet(on: bool) -> None:
    gdb.execute(f"maint packet Qqemu.PhyMemMode:{1 if on else 0}", to_string=True)
    gdb.execute("maint flush dcache", to_string=True)


def physical_mode_supported() -> bool:
    key = ("phymem",)
    if key not in STATE.stop_cache:
        out = gdb.execute("maint packet qqemu.PhyMemMode", to_string=True)
        STATE.stop_cache[key] = bool(re.search(r'received: "[01]"', out))
    return STATE.stop_cache[key]


@contextlib.contextmanager
def physical_memory():
    """Memory reads in this block are physical (QEMU's PhyMemMode); virtual mode is restored on every path."""
    if not physical_mode_supported():
        raise RkvmError("this gdbstub has no physical-memory mode (QEMU's qqemu.PhyMemMode)")
    try:
        _phys_mode_packet(True)   # inside the try: a failure after the mode switched still switches back
        yield
    finally:
        _phys_mode_packet(False)


def gdbstub_read_physical(addr: int, size: int) -> bytes:
    """Bytes at a physical address through the gdbstub only (PhyMemMode on and off around it)."""
    _check_range(addr, size, "PA")
    with physical_memory():
        try:
            return bytes(gdb.selected_inferior().read_memory(addr, size))
        except gdb.MemoryError:
            raise RkvmError(f"cannot read {size} bytes at PA {addr:#x} (no RAM or device there)") from None


@contextlib.contextmanager
def physical_reader():
    """Yield read(addr, size) -> bytes over physical memory. Guest RAM is read directly when a RAM
    backend covers the range; anything else through the gdbstub, with PhyMemMode switched on at the
    first such read and off when the block ends, on every path (a walk reads many tables; switching per
    read would triple the round trips)."""
    from gdb_rkvm.live import physmem
    inferior = gdb.selected_inferior()
    ram = physmem.backend()
    phys_on = False

    def read(addr: int, size: int) -> bytes:
        nonlocal phys_on
        key = ("phys", addr, size)
        _check_range(addr, size, "PA")
        if key not in STATE.stop_cache:
            if ram is not None and ram.covers(addr, size):
                STATE.stop_cache[key] = ram.read(addr, size)
                return STATE.stop_cache[key]
            if not phys_on:
                if not physical_mode_supported():
                    raise RkvmError("this gdbstub has no physical-memory mode (QEMU's qqemu.PhyMemMode)")
                phys_on = True
                _phys_mode_packet(True)
            try:
                STATE.stop_cache[key] = bytes(inferior.read_memory(addr, size))
            except gdb.MemoryError:
                raise RkvmError(f"cannot read {size} bytes at PA {addr:#x} (no RAM or device there)") from None
        return STATE.stop_cache[key]

    try:
        yield read
    finally:
        if phys_on:
            _phys_mode_packet(False)


def read_physical(addr: int, size: int) -> bytes:
    """Bytes at a physical address."""
    key = ("phys", addr, size)
    if key in STATE.stop_cache:
        return STATE.stop_cache[key]
    with physical_reader() as read:
        return read(addr, size)


def symbol_at(addr: int) -> str | None:
    """'name+off' for a code or data address GDB has symbols for, else None (always None while a
    KASLR kernel's slide is unknown: the symbols would be wrong)."""
    if STATE.kaslr.get("pending"):
        return None
    try:
        out = gdb.execute(f"info symbol {addr:#x}", to_string=True).strip()
    except gdb.error:
        return None
    if out.startswith("No symbol"):
        return None
    m = re.match(r"(\S+)(?: \+ (\d+))? in section", out)
    if not m or not symbol_names.worth_showing(addr, m.group(1)):
        return None
    return m.group(1) + (f"+{int(m.group(2)):#x}" if m.group(2) else "")


def symbol_address(name: str) -> int | None:
    """Address of a global/static symbol, or None."""
    try:
        return int(gdb.parse_and_eval(f"(unsigned long)&{name}")) & MASK64
    except gdb.error:
        return None


def read_u64_symbol(name: str) -> int | None:
    """Value of a u64-sized kernel variable (or field), or None if absent or unreadable.

    GDB reads memory through the selected vCPU's current regime; a CPU stopped at EL2 (MMU off)
    cannot see kernel addresses, so then the VA is translated with TTBR1_EL1 and read physically.
    """
    try:
        if not in_guest():   # in the guest, the same VA may be mapped by the guest's own tables
            return int(gdb.parse_and_eval(f"(unsigned long){name}")) & MASK64
        raise gdb.MemoryError("the selected CPU is in the guest")
    except gdb.MemoryError:
        addr = symbol_address(name)
        if addr is None:
            return None
        try:
            return int.from_bytes(read_kernel_virtual(addr, 8), "little")
        except RkvmError:
            return None
    except gdb.error:
        return None


def read_kernel_virtual(va: int, size: int) -> bytes:
    """Bytes at a kernel VA whatever EL or world the selected CPU is in: direct when it can, else walked
    with the kernel's TTBR1_EL1 (a CPU in the host)."""
    if sees_kernel():
        return read_virtual(va, size)
    cpu = host_cpu()
    if cpu is None:
        raise RkvmError(f"cannot read kernel VA {va:#x}: every CPU is in the guest (its EL1 registers are the "
                        "guest's; the kernel's are in the stub's host save area)")
    from gdb_rkvm.live.translation import translate  # translation builds on this module
    tr = translate(va, cpu)
    if not tr.ok:
        raise RkvmError(f"VA {va:#x} is not mapped: {tr.fault}")
    return read_physical(tr.pa, size)


def debug_event_at_hook() -> stub_abi.DebugEvent:
    """The rkvm_debug_event() call the selected CPU is stopped at (its arguments in x0..x3)."""
    regs = [int(gdb.parse_and_eval(f"$x{n}")) & MASK64 for n in range(4)]
    return stub_abi.DebugEvent.from_registers(*regs)

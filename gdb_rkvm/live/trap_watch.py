"""Watching traps into EL2 with breakpoints: the one pattern (arm, decide at each hit, deadline,
disarm) behind `hvc catch`, `smc catch`, `hvc trace --args`, `step-el2`, `trace-el --args` and
`run-to`. Each hit becomes a `live.trap.Trap`, goes through a `TrapFilter`, and is handed to the
caller's callback, which records or prints it and says whether the target should stop.

Where breakpoints go: VBAR_EL2 + the watched slots (PAs: EL2 runs with its MMU off), the ERETs of
the EL2 code next to each vector table (returns), the kernel's SMC instructions (EL1 VAs, before
they run), rkvm.ko's debugger hook (`rkvm_debug_event`) and the kernel's boot code.
"""

import contextlib
from collections.abc import Callable
from dataclasses import replace

import gdb

from gdb_rkvm.arch import regfields, smccc
from gdb_rkvm.arch.vectors import LOWER_A64_SYNC
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import boot, el2_symbols, el2_traps, kernel_facts, symbol_files, trap
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE, StopCheckBreakpoint, notice, quietly
from gdb_rkvm.live.trap import ENTRY, RETURN, SMC_SITE, Trap, TrapFilter

NO_RETURNS, PAIRED, EACH = "none", "paired", "each"   # what a watch does at the ERETs


class _Point(StopCheckBreakpoint):
    """One breakpoint of a watch: the owner decides in stop(); an error there stops the target with
    one line (a watch that cannot read its registers must not let the guest run on unseen)."""

    def __init__(self, location: str, owner, role: str, what: str, **where):
        super().__init__(location, internal=True)
        self.silent = True
        self.owner, self.role, self.what = owner, role, what
        self.pa, self.vbar, self.va, self.imm = (where.get(k) for k in ("pa", "vbar", "va", "imm"))

    def check(self):
        try:
            return self.owner.hit(self)
        except (gdb.error, RkvmError) as e:
            gdb.write(f"rkvm: {self.what}: {e}\n")
            return True


def smc_sites() -> list[tuple[int, int]]:
    """(VA, imm16) of the kernel's SMC instructions (vmlinux's text outside init/exit), at the KASLR slide."""
    from gdb_rkvm.model import elf_symtab
    vmlinux, slide = symbol_files.vmlinux_at_slide("the SMC instructions")
    sites = elf_symtab.conduit_sites(vmlinux, smccc.SMC_BITS)
    if not sites:
        raise RkvmError(f"no SMC instruction found in {vmlinux}")
    return [((va + slide) & t.MASK64, imm) for va, imm in sites]


class TrapWatch:
    """Breakpoints at VBAR_EL2 + each of `slots` (every distinct VBAR_EL2 of the CPUs), the EL2 code's
    ERETs (`returns`: PAIRED hands each entry on with the x0 its ERET returned, EACH hands entries and
    returns on separately) and the kernel's SMC instructions (`smc_sites`). `on_trap(trap)` gets every
    trap `trap_filter` accepts and returns True to stop the target. Past `deadline` the next hit stops."""

    def __init__(self, on_trap: Callable[[Trap], bool], *, slots=(LOWER_A64_SYNC,), returns: str = NO_RETURNS,
                 smc_sites: bool = False, trap_filter: TrapFilter = trap.HVC_OR_SMC_FILTER, deadline=None,
                 require_vbar: bool = True):
        self.on_trap, self.slots, self.returns, self.smc = on_trap, tuple(slots), returns, smc_sites
        self.filter, self.deadline, self.require_vbar = trap_filter, deadline, require_vbar
        self.points: dict[tuple[str, int], _Point] = {}   # (role, address) -> breakpoint
        # (cpu, guest) -> the entry waiting for its ERET (PAIRED). Keyed by world: the host's
        # RKVM_HVC_VCPU_RUN returns at the guest's exit, not at the ERET into the guest between them,
        # and a guest exit's return is the ERET back into the guest
        self.pending: dict[tuple[int, bool], Trap] = {}
        self.done, self.enabled = False, True
        self._names: dict[int, str | None] = {}
        self._marks: dict[int, object] = {}

    # -- breakpoints
    def arm(self) -> list[int]:
        """Place (or move) the breakpoints where VBAR_EL2 points now; the entry PAs, sorted."""
        wanted: dict[tuple[str, int], dict] = {}
        if self.smc:
            old = [k for k in self.points if k[0] == SMC_SITE]
            sites = [(k[1], self.points[k].imm) for k in old] if old else smc_sites()
            wanted.update({(SMC_SITE, va): {"va": va, "imm": imm} for va, imm in sites})
        vbars = set(el2_traps.vbar_el2_by_cpu().values()) if self.slots or self.returns != NO_RETURNS else set()
        if not vbars and self.require_vbar:
            raise RkvmError("VBAR_EL2 is not set on any CPU yet: boot further first")
        for v in vbars:
            wanted.update({(ENTRY, v + off): {"pa": v + off, "vbar": v} for off in self.slots})
            for pa in el2_traps.eret_addresses(v) if self.returns != NO_RETURNS else []:
                wanted[(RETURN, pa)] = {"pa": pa, "vbar": v}
        for key in set(self.points) - set(wanted):
            self.points.pop(key).delete()
        for key in set(wanted) - set(self.points):
            role, addr = key
            what = f"{'smc' if role == SMC_SITE else 'hvc'} breakpoint at {addr:#x}"
            self.points[key] = _Point(f"*{addr:#x}", self, role, what, **wanted[key])
            self.points[key].enabled = self.enabled
        self._names.clear()
        self._marks.clear()
        return sorted(a for r, a in self.points if r == ENTRY)

    def addresses(self, role: str) -> list[int]:
        return sorted(a for r, a in self.points if r == role)

    def owns(self, breakpoints) -> bool:
        mine = set(self.points.values())
        return any(b in mine for b in breakpoints)

    def enable(self, on: bool) -> None:
        self.enabled = on
        for bp in self.points.values():
            bp.enabled = on

    def disarm(self) -> None:
        for bp in self.points.values():
            if bp.is_valid():
                bp.delete()
        self.points.clear()

    # -- one hit
    def hit(self, bp: _Point) -> bool:
        if self.deadline is not None and self.deadline.passed():
            self.done = True
            return True
        cpu = el2_traps.current_cpu()
        if bp.role == RETURN:
            return self._returned(bp, cpu)
        tr = self._smc_site(bp, cpu) if bp.role == SMC_SITE else self._entry(bp, cpu)
        if not self.filter.matches(tr):
            return False
        tr = trap.named(self._abort_regs(tr), self._symbol, self._el2_namer(bp.vbar))  # only for the traps kept
        if self.returns == PAIRED and bp.role == ENTRY:
            self.pending[(cpu, bool(tr.guest))] = tr
            return False
        return bool(self.on_trap(tr))

    def _returned(self, bp: _Point, cpu: int) -> bool:
        if self.returns == PAIRED:
            if not any(c == cpu for c, _ in self.pending):
                return False      # the hot path of a trace: nothing waits on this CPU, nothing to read
            values = t.read_current(["x0", "HCR_EL2"])
            # HCR_EL2.VM names the world the ERET returns to: 1 into a guest
            first = self.pending.pop((cpu, regfields.stage2_enabled(values["HCR_EL2"])), None)
            if first is None:
                return False
            return bool(self.on_trap(replace(first, ret=values["x0"])))
        values = t.read_current(["SPSR_EL2", "ELR_EL2", "HCR_EL2", "x0"])
        return bool(self.on_trap(trap.eret(cpu, bp.pa, values, self._symbol, self._el2_namer(bp.vbar))))

    def _entry(self, bp: _Point, cpu: int) -> Trap:
        # the hot path of a trace: one batch of registers, symbols only after the filter
        values = t.read_current(["ESR_EL2", "ELR_EL2", "SPSR_EL2", "HCR_EL2"] + [f"x{n}" for n in range(8)])
        return trap.entry(cpu, bp.pa, bp.vbar, values)

    @staticmethod
    def _abort_regs(tr: Trap) -> Trap:
        """A guest exit kept by the filter gets FAR_EL2 and HPFAR_EL2 (the abort's VA and IPA page)."""
        if tr.kind != ENTRY or not tr.guest:
            return tr
        values = t.read_current(["FAR_EL2", "HPFAR_EL2"])
        return replace(tr, far=values["FAR_EL2"], hpfar=values["HPFAR_EL2"])

    @staticmethod
    def _smc_site(bp: _Point, cpu: int) -> Trap:
        values = t.read_current(["cpsr"] + [f"x{n}" for n in range(8)])
        try:
            hcr = t.read_register("HCR_EL2", cpu)
        except RkvmError:
            hcr = None
        return trap.smc_site(cpu, bp.va, bp.imm, values, hcr)

    def _symbol(self, addr: int) -> str | None:
        if addr not in self._names:
            self._names[addr] = t.symbol_at(addr)
        return self._names[addr]

    def _el2_namer(self, vbar: int | None):
        if vbar is None:
            return None
        if vbar not in self._marks:
            self._marks[vbar] = kernel_facts.landmarks([vbar])
        marks = self._marks[vbar]
        return lambda pa: kernel_facts.el2_symbol(pa, marks)


def trap_now(cpu: int) -> Trap:
    """The trap a CPU stopped at an EL2 vector slot is taking (read from a plain stop, not a watch)."""
    names = ["pc", "VBAR_EL2", "ESR_EL2", "ELR_EL2", "SPSR_EL2", "HCR_EL2", "FAR_EL2", "HPFAR_EL2"] + \
        [f"x{n}" for n in range(8)]
    values = {n: t.read_register(n, cpu) for n in names}
    marks = kernel_facts.landmarks([values["VBAR_EL2"]])
    return trap.entry(cpu, values["pc"], values["VBAR_EL2"], values, t.symbol_at,
                      lambda pa: kernel_facts.el2_symbol(pa, marks))


class TrapCatch:
    """An armed `rkvm hvc catch` / `smc catch`: a TrapWatch that stays across continues, moves with
    VBAR_EL2 at every stop, keeps the last trap it stopped on and shows it through `show` (the
    command's printing) at that stop."""

    def __init__(self, trap_filter: TrapFilter, show: Callable[[Trap], None], hvc: bool = True, smc: bool = False,
                 slots: tuple[int, ...] = (LOWER_A64_SYNC,), name: str = "hvc catch"):
        self.filter, self.show, self.last, self.suspended = trap_filter, show, None, False
        self.hvc, self.name = hvc, name
        self.watch = TrapWatch(self._caught, slots=slots if hvc else (), smc_sites=smc,
                               trap_filter=trap_filter, require_vbar=False)
        gdb.events.stop.connect(self._on_stop)
        el2_symbols.InstallHookBreakpoint.listeners.append(self._vbar_moved)

    def _caught(self, tr: Trap) -> bool:
        self.last = tr
        return True

    def arm(self) -> list[int]:
        return self.watch.arm()

    def _vbar_moved(self, vbar: int) -> bool:
        """rkvm.ko installed new vectors: stop (and re-arm at that stop) unless already covered."""
        if self.suspended or not self.hvc or vbar + LOWER_A64_SYNC in self.watch.addresses(ENTRY):
            return False
        notice(f"rkvm: VBAR_EL2 changed to {vbar:#x}: {self.name} moves there (continue to go on)")
        return True

    def suspend(self) -> None:
        """Out of the way of a command that resumes with breakpoints of its own: its run is not cut
        short by this catch's stops."""
        self.suspended = True
        self.watch.enable(False)

    def resume(self) -> None:
        self.suspended = False
        with contextlib.suppress(gdb.error, RkvmError):
            self.arm()
        self.watch.enable(True)

    def _on_stop(self, event) -> None:
        if self.suspended:
            return
        if isinstance(event, gdb.BreakpointEvent) and self.watch.owns(event.breakpoints) and self.last is not None:
            self.show(self.last)
        with contextlib.suppress(gdb.error, RkvmError):
            self.arm()  # VBAR_EL2 may have moved while the guest ran

    def disarm(self) -> None:
        self.watch.disarm()
        gdb.events.stop.disconnect(self._on_stop)
        if self._vbar_moved in el2_symbols.InstallHookBreakpoint.listeners:
            el2_symbols.InstallHookBreakpoint.listeners.remove(self._vbar_moved)


@contextlib.contextmanager
def catch_suspended(command: str):
    """Run a block that resumes the guest with the armed catches (`hvc catch`, `exit catch`) paused,
    and say so after."""
    catches = [c for c in (STATE.hvc_catch, STATE.exit_catch) if c is not None and not c.suspended]
    for catch in catches:
        catch.suspend()
    try:
        yield
    finally:
        for catch in catches:
            catch.resume()
            notice(f"rkvm: the armed {catch.name} ({catch.filter.describe()}) was paused while {command} ran "
                   "(its stops would have cut the run short); it is armed again")


class CountedStop:
    """Stops on the `count`-th hit `match()` turns into a record (None: go on), or at the deadline;
    the record is left in `matched`."""

    def __init__(self, location: str, match: Callable[[], dict | None], count: int, deadline, what: str):
        self.match, self.remaining, self.deadline, self.matched = match, count, deadline, None
        self.point = quietly(lambda: _Point(location, self, "hook", what))

    def hit(self, _bp) -> bool:
        if self.deadline.passed():
            return True
        record = self.match()
        if record is None:
            return False
        self.remaining -= 1
        if self.remaining > 0:
            return False
        self.matched = record
        return True

    def delete(self) -> None:
        if self.point.is_valid():
            self.point.delete()


def stop_at_debug_event(event: str, cpu: int | None, count: int, deadline) -> CountedStop:
    """On rkvm_debug_event(event, cpu, stub_pa, arg) (rkvm.ko's debugger hook): the wanted event on
    the wanted CPU, decoded by `gdb_target.debug_event_at_hook()` from the ABI header's RKVM_EV_*."""

    def match():
        ev = t.debug_event_at_hook()
        return ev.to_dict() if ev.event == event and (cpu is None or ev.cpu == cpu) else None
    return CountedStop("rkvm_debug_event", match, count, deadline, "rkvm_debug_event breakpoint")


def stop_at_boot(event: str, pa: int, cpu: int | None, count: int, deadline) -> CountedStop:
    """At a physical address of the kernel's boot code (boot.landmark(event)), hit by a wanted CPU."""

    def match():
        now = el2_traps.current_cpu()
        return boot.describe(event, now) if cpu is None or now == cpu else None
    return CountedStop(f"*{pa:#x}", match, count, deadline, f"{event} breakpoint at {pa:#x}")

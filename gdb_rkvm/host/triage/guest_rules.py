"""Triage rules for the guest world: a stage-2 abort the VMM retries forever, a VTTBR_EL2 that is not the
stage-2 tables' physical address, a VTCR_EL2 that disagrees with the tables, and a host that came back
from the guest on the guest's EL1 registers. Pure functions over the snapshot's `guest` section and
per-CPU `world` records (model/world.py)."""

from gdb_rkvm.arch import exits, stage2, stage2_fault
from gdb_rkvm.arch.pagetable import WalkError
from gdb_rkvm.host.triage.rules import V2P_EXPLANATION, Finding, _origin_evidence, ram_text
from gdb_rkvm.model.snapshot import Snapshot
from gdb_rkvm.model.world import GuestState

LOOP_AT_LEAST = 8          # stage-2 aborts on the same IPA: a VMM that handles one never sees it twice


def _ram(g: GuestState) -> list[tuple[int, int]]:
    return [(s, n) for s, n in (g.ram or [])]


def _last_sync(g: GuestState) -> tuple[int, int, int, int, str] | None:
    """(ESR_EL2, FAR_EL2, HPFAR_EL2, exit number, line) of the last synchronous exit: the vCPU's last exit,
    or rkvm.ko's record of the last synchronous one when the last was an IRQ (which has no syndrome)."""
    if g.exit.reason == "sync":
        return g.exit.esr, g.exit.far, g.exit.hpfar, g.exit.count, g.exit.text
    m = g.module
    if m is not None and m.sync_count:
        return m.sync_esr, m.sync_far, m.sync_hpfar, m.sync_count, exits.classify(m.sync_esr).line()
    return None


def _autopsy(g: GuestState) -> stage2_fault.Stage2Fault | None:
    last = _last_sync(g)
    if last is None or exits.classify(last[0]).reason.value not in ("dabt", "iabt"):
        return None
    return stage2_fault.autopsy(last[0], last[1], last[2], _ram(g))


def _exit_line(g: GuestState) -> str:
    last = _last_sync(g)
    if last is None:
        return f"last exit (#{g.exit.count}): {g.exit.text}"
    tail = "" if last[3] == g.exit.count else f"; the last exit (#{g.exit.count}) was {g.exit.kind}"
    return f"last synchronous exit (#{last[3]}): {last[4]}{tail}"


def _guest_cpus(snap: Snapshot, g: GuestState) -> list[int]:
    """CPUs in the guest on this vCPU, else the ones that ran it."""
    now = [c.cpu for c in snap.cpus if c.world and c.world.in_guest and c.world.vcpu_pa == g.vcpu_pa]
    return now or [c.cpu for c in snap.cpus if c.world and c.world.host_save and c.world.host_save.runs
                   and c.world.vcpu_pa == g.vcpu_pa]


def _ipa_bits(vtcr: int) -> int | None:
    try:
        return stage2.stage2_start(vtcr).ia_bits
    except WalkError:
        return None


def _vtcr_evidence(g: GuestState) -> list[str]:
    """Why VTCR_EL2 cannot walk the tables: its own problems, the VMM's tables built for another VTCR,
    a guest RAM IPA beyond its IPA space. [] when nothing says so."""
    ev = [p.text for p in stage2.vtcr_problems(g.vtcr_el2)]
    bits = _ipa_bits(g.vtcr_el2)
    m = g.module
    if m is not None and m.vtcr_tables != g.vtcr_el2:
        built = _ipa_bits(m.vtcr_tables)
        ev.append(f"the stage-2 tables were built for VTCR_EL2 {m.vtcr_tables:#x} ({built}-bit IPA, start level "
                  f"{m.s2_start_level}); the vCPU runs with {g.vtcr_el2:#x} ({bits}-bit IPA)")
    if bits is not None:
        high = [(s, n) for s, n in _ram(g) if (s + n - 1) >> bits]
        for s, n in high:
            ev.append(f"guest RAM at IPA {s:#x}-{s + n - 1:#x} needs {(s + n - 1).bit_length()} bits; VTCR_EL2.T0SZ = "
                      f"{64 - bits} gives a {bits}-bit IPA space, so no access to it can be translated")
    return ev


def _stage2_broken(g: GuestState) -> bool:
    return bool(g.vttbr_baddr_in_ram is False or g.vttbr_origin or _vtcr_evidence(g))


def stage2_fault_loop(snap: Snapshot, ctx: dict) -> list[Finding]:
    g = snap.guest
    f = _autopsy(g) if g else None
    if f is None or not f.is_stage2_abort or not (f.in_guest_ram or f.s1ptw) or _stage2_broken(g):
        return []
    aborts = g.module.aborts if g.module else g.exit.count
    if aborts < LOOP_AT_LEAST or (g.module and g.module.state != "runnable"):
        return []
    lvl = f" at level {f.level}" if f.level is not None else ""
    ranges = ", ".join(f"{s:#x}-{s + n - 1:#x}" for s, n in _ram(g))
    ev = [_exit_line(g), f.what_the_guest_did(), f.fault_text(),
          f"IPA {f.ipa:#x} is guest RAM ({ranges}): the VMM's memory map has it, stage 2 does not",
          f"guest PC {g.pc:#x}: the VMM resumes the guest at the same instruction, which faults again"]
    if g.module:
        ev.append(f"rkvm.ko: {aborts} stage-2 abort(s) of {sum(g.module.exits.values())} exits, state "
                  f"{g.module.state}")
    return [Finding("stage2-fault-loop", "error", _guest_cpus(snap, g),
                    f"the guest takes the same stage-2 {f.kind} fault{lvl} again and again: IPA {f.ipa:#x}"
                    f"{' (guest RAM)' if f.in_guest_ram else ''}", ev,
                    "A stage-2 fault on guest RAM means the page is in the guest's memory map but not in the stage-2 "
                    "tables. A VMM that treats it as handled and returns to the guest (ELR_EL2 unchanged) retries the "
                    "same access forever: the guest never makes progress, and nothing crashes to tell you. Fix: "
                    f"{f.advice}. Check the loop that builds stage 2 covers every page of guest RAM (an off-by-one "
                    "leaves out the last one, often the stack).")]


def vttbr_not_ram(snap: Snapshot, ctx: dict) -> list[Finding]:
    g = snap.guest
    if g is None or g.vttbr_baddr_in_ram is not False:
        return []
    base = stage2.vttbr_baddr(g.vttbr_el2)
    ram = ram_text(snap)
    return [Finding("vttbr-not-ram", "error", _guest_cpus(snap, g),
                    f"VTTBR_EL2's table base {base:#x} is not RAM", [
                        f"vCPU at PA {g.vcpu_pa:#x}: VTTBR_EL2 {g.vttbr_el2:#x} (BADDR {base:#x}, VMID "
                        f"{stage2.vmid(g.vttbr_el2, g.vtcr_el2)})", f"RAM: {ram}", _exit_line(g)],
                    "VTTBR_EL2.BADDR is the physical address of the stage-2 start table: the table walker reads "
                    "descriptors from there for every guest access. There is no memory at this address, so every "
                    "guest instruction fetch faults at stage 2 from the first one on. Allocate the tables with "
                    "alloc_pages() and put page_to_phys() of the start table in VTTBR_EL2.")]


def vttbr_from_virt_to_phys(snap: Snapshot, ctx: dict) -> list[Finding]:
    g = snap.guest
    if g is None or g.vttbr_origin is None:
        return []
    base = stage2.vttbr_baddr(g.vttbr_el2)
    o = g.vttbr_origin
    return [Finding("vttbr-from-virt-to-phys", "error", _guest_cpus(snap, g),
                    f"VTTBR_EL2's table base {base:#x} is virt_to_phys() of a {o.region} address",
                    [f"VTTBR_EL2 {g.vttbr_el2:#x} (vCPU at PA {g.vcpu_pa:#x})", *_origin_evidence(o, base)],
                    V2P_EXPLANATION + " The stage-2 tables the VMM filled are at the real PA; the table walker "
                    "reads whatever is at VTTBR_EL2's. Allocate the stage-2 tables with alloc_pages() (physically "
                    "contiguous, in the linear map) and use page_to_phys(); never vmalloc() for memory the "
                    "hardware walks.")]


def vtcr_mismatch(snap: Snapshot, ctx: dict) -> list[Finding]:
    g = snap.guest
    if g is None:
        return []
    ev = _vtcr_evidence(g)
    if not ev:
        return []
    f = _autopsy(g)
    if f is not None and f.is_stage2_abort:
        first = " (the guest's first instruction)" if f.instruction and g.module and g.pc == g.module.ram_ipa else ""
        ev += [_exit_line(g), f"{f.what_the_guest_did()}{first}", f.fault_text()]
    return [Finding("vtcr-mismatch", "error", _guest_cpus(snap, g),
                    f"VTCR_EL2 {g.vtcr_el2:#x} does not describe the stage-2 tables the guest runs on", ev,
                    "VTCR_EL2 tells the table walker how to read VTTBR_EL2's tables: T0SZ the IPA size, SL0 the start "
                    "level, TG0 the granule. Tables built for one VTCR and walked with another are read at the "
                    "wrong level or not at all: here the guest faults at stage 2 on its first fetch, before running "
                    "any instruction. Derive the start level and T0SZ from one VTCR value and use that same value "
                    "for the tables and for the vCPU.")]


def host_el1_state_clobbered(snap: Snapshot, ctx: dict) -> list[Finding]:
    out = []
    g = snap.guest
    for c in snap.cpus:
        bad = c.world.host_el1_clobbered() if c.world else {}
        if not bad:
            continue
        ev = []
        for name, (live, saved) in bad.items():
            guest = g is not None and g.el1.get(name) == live
            ev.append(f"{name}: live {live:#x}, the stub saved {saved:#x} for the host"
                      + (" - the live value is the guest's (its vCPU's EL1 context)" if guest else ""))
        h = c.world.host_save
        ev.append(f"the stub's host save area: {h.runs} guest run(s) on this CPU, not in the guest now")
        if c.summary:
            ev.append(f"PC {c.summary.pc:#x} at {c.summary.mode}")
        out.append(Finding("host-el1-state-clobbered", "error", [c.cpu],
                           f"CPU {c.cpu} came back from the guest on EL1 registers that are not the host's "
                           f"({', '.join(bad)})", ev,
                           "The world switch must save the host's EL1 system registers before loading the guest's, "
                           "and load the host's back on every exit. Here the exit path left the guest's in place: "
                           "the host kernel resumed with the guest's VBAR_EL1, SCTLR_EL1 and translation tables, so "
                           "its next instruction fetch or exception went into the guest's world and the host died "
                           "silently right after the first exit. Load the host's EL1 context (RKVM_HOST_EL1) on the "
                           "exit path, before the ERET to the host."))
    return out


GUEST_RULES = [stage2_fault_loop, vttbr_from_virt_to_phys, vttbr_not_ram, vtcr_mismatch, host_el1_state_clobbered]

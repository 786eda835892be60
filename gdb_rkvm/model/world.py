"""The guest world as records both sides share: where each CPU is (host or guest), the stub's host save
area, the vCPU and its last exit, and rkvm.ko's own view of its guest (`rkvm_guest_debug`, what
`cat /sys/kernel/debug/rkvm/guest` prints). `rkvm cpus`, `rkvm el`, `rkvm vcpu` and the snapshot
carry them; triage's guest rules read them.
"""

from dataclasses import dataclass

from gdb_rkvm.arch import decode, esr, exits, pagetable, pstate, stage2, stage2_fault
from gdb_rkvm.arch.fields import MASK64
from gdb_rkvm.model.stub_abi import HostSave, VcpuState

# The EL1 registers a world switch must swap that the kernel never changes once it runs (TTBR0_EL1
# follows the running process, the fault/return registers every exception): a host whose live value
# differs from the one the stub saved did not get its own back.
STABLE_EL1 = ("SCTLR_EL1", "TTBR1_EL1", "TCR_EL1", "MAIR_EL1", "VBAR_EL1")
# arm64 Linux keeps the ASID in TTBR1_EL1[63:48] (TCR_EL1.A1 = 1): it changes at every context switch
STABLE_MASK = {"TTBR1_EL1": (1 << 48) - 1}

GUEST_STATES = {0: "runnable", 1: "done", 2: "stopped"}


@dataclass(frozen=True)
class HostSaveSummary:
    """One CPU's host save area in the stub (RKVM_HOST_*): the host's EL1 state while a guest runs."""

    in_guest: bool
    vcpu_pa: int
    runs: int                  # guest entries on this CPU
    elr_el2: int               # where the host resumes: right after its RKVM_HVC_VCPU_RUN
    sp_el1: int
    el1: dict[str, int]        # the host's EL1 registers as the stub saved them

    @classmethod
    def of(cls, h: HostSave) -> "HostSaveSummary":
        return cls(h.in_guest, h.vcpu_pa, h.runs, h.elr_el2, h.sp_el1, dict(h.el1))


@dataclass(frozen=True)
class CpuWorld:
    """Which world one CPU is in, from HCR_EL2.VM, and the stub's record of the host beside it."""

    world: str                       # host | guest
    vmid: int | None                 # VTTBR_EL2.VMID while in the guest
    hcr_el2: int
    vttbr_el2: int
    vtcr_el2: int
    vcpu_pa: int | None              # the vCPU running, or that ran last, on this CPU
    host_save: HostSaveSummary | None
    el1_live: dict[str, int]         # the live EL1 registers (the guest's while world == guest)

    @property
    def in_guest(self) -> bool:
        return self.world == "guest"

    def describe(self) -> str:
        if not self.in_guest:
            return "host"
        return f"guest (VMID {self.vmid}, VTTBR_EL2 {self.vttbr_el2:#x})"

    def host_el1_clobbered(self) -> dict[str, tuple[int, int]]:
        """{register: (live, saved)} for the stable EL1 registers that differ from the host save area,
        in the host after at least one guest run; {} when there is nothing to compare."""
        h = self.host_save
        if self.in_guest or h is None or h.in_guest or not h.runs:
            return {}
        mask = STABLE_MASK
        return {n: (self.el1_live[n], h.el1[n]) for n in STABLE_EL1 if n in self.el1_live and n in h.el1
                and (self.el1_live[n] ^ h.el1[n]) & mask.get(n, MASK64)}


@dataclass(frozen=True)
class GuestExitRecord:
    """A vCPU's last exit as the stub saved it, classified (arch/exits)."""

    reason: str            # the stub's RKVM_EXIT_*: sync, irq, ...
    esr: int
    far: int
    hpfar: int
    ipa: int               # HPFAR_EL2.FIPA page | FAR_EL2[11:0]
    count: int             # exits since the vCPU's reset
    kind: str              # arch/exits ExitReason: hvc, dabt, iabt, wfx, irq, ...
    text: str              # one line: reason, EC and what happened

    @classmethod
    def of(cls, v: VcpuState) -> "GuestExitRecord":
        e = v.exit
        kind = e.reason if e.reason in ("irq", "fiq", "serror") else "sync"
        c = exits.classify(e.esr, kind)
        return cls(e.reason, e.esr, e.far, e.hpfar, e.ipa, e.count, c.reason.value, c.line())


@dataclass(frozen=True)
class GuestModule:
    """rkvm.ko's `rkvm_guest_debug`: the VMM's side of its guest (what its debugfs file prints)."""

    state: str                       # runnable | done | stopped
    vcpu_pa: int
    ram_pa: int
    ram_ipa: int
    ram_size: int
    vttbr: int
    vtcr: int                        # what the vCPU runs with
    vtcr_tables: int                 # what the stage-2 tables were built for
    hcr: int
    s2_tables_va: int
    s2_start_level: int
    s2_ipa_bits: int
    s2_tables: int                   # table pages in use
    runs: int
    exits: dict[str, int]            # hvc, dabt, iabt, wfx, irq, other
    uart_chars: int
    sync_esr: int = 0                # the last synchronous exit: an IRQ exit leaves ESR_EL2 stale
    sync_far: int = 0
    sync_hpfar: int = 0
    sync_pc: int = 0
    sync_count: int = 0              # its number (0: none yet)

    @property
    def aborts(self) -> int:
        """Stage-2 aborts taken (data and instruction)."""
        return self.exits.get("dabt", 0) + self.exits.get("iabt", 0)


# struct rkvm_guest_debug_state in module/rkvm_guest.c: u64 fields in this order (append only)
GUEST_DEBUG_FIELDS = ("magic", "state", "vcpu_pa", "ram_pa", "ram_ipa", "ram_size", "vttbr", "vtcr", "vtcr_tables",
                      "hcr", "s2_tables_va", "s2_start_level", "s2_ipa_bits", "s2_tables", "runs")
EXIT_KINDS = ("hvc", "dabt", "iabt", "wfx", "irq", "other")
SYNC_FIELDS = ("sync_esr", "sync_far", "sync_hpfar", "sync_pc", "sync_count")
GUEST_DEBUG_SIZE = 8 * (len(GUEST_DEBUG_FIELDS) + len(EXIT_KINDS) + 1 + len(SYNC_FIELDS))


def guest_module(data: bytes, magic: int) -> GuestModule | None:
    """rkvm_guest_debug from its bytes; None for a short read or before rkvm.ko filled it (magic)."""
    if len(data) < GUEST_DEBUG_SIZE:
        return None
    u = [int.from_bytes(data[i:i + 8], "little") for i in range(0, GUEST_DEBUG_SIZE, 8)]
    f = dict(zip(GUEST_DEBUG_FIELDS, u[:len(GUEST_DEBUG_FIELDS)], strict=True))
    if f.pop("magic") != magic:
        return None
    n = len(GUEST_DEBUG_FIELDS)
    level = f["s2_start_level"]
    return GuestModule(**{**f, "state": GUEST_STATES.get(f["state"], str(f["state"])),
                          "s2_start_level": level - (1 << 64) if level >> 63 else level,
                          "exits": dict(zip(EXIT_KINDS, u[n:n + len(EXIT_KINDS)], strict=True)),
                          "uart_chars": u[n + len(EXIT_KINDS)],
                          **dict(zip(SYNC_FIELDS, u[n + len(EXIT_KINDS) + 1:], strict=True))})


@dataclass(frozen=True)
class VbarOrigin:
    """A physical address EL2 was given (VBAR_EL2, VTTBR_EL2.BADDR) that is virt_to_phys() of a mapped
    module or vmalloc VA, and that VA's real PA (the name is from its first use, VBAR_EL2)."""

    va: int
    region: str
    symbol: str | None
    real_pa: int | None


@dataclass(frozen=True)
class GuestState:
    """The guest in the snapshot: its vCPU (registers, the stage 2 it runs with, its last exit), where
    its stage-2 tables are, and rkvm.ko's view of it when readable."""

    vcpu_pa: int
    pc: int
    pstate: int
    sp_el1: int
    hcr_el2: int
    vttbr_el2: int
    vtcr_el2: int
    exit: GuestExitRecord
    el1: dict[str, int]
    vttbr_baddr_in_ram: bool | None          # None: RAM unknown
    vttbr_origin: VbarOrigin | None
    module: GuestModule | None = None
    ram: list[list[int]] | None = None       # guest RAM as [IPA, size] pairs (the module's, else the lab's)


@dataclass(frozen=True)
class VcpuView:
    """Everything `rkvm vcpu` shows about one vCPU structure, decoded."""

    pa: int
    running_on: list[int]            # CPUs in the guest on this vCPU now (its saved registers are then stale)
    x: list[int]                     # x0..x30 as saved at the last exit
    pc: int
    pstate: int
    pstate_text: str
    sp_el0: int
    sp_el1: int
    hcr_el2: int
    hcr_text: str
    vttbr_el2: int
    vmid: int
    vtcr_el2: int
    vtcr_text: str
    el1: dict[str, int]
    exit: GuestExitRecord
    esr_text: str                    # ESR_EL2 decoded (arch/esr)
    esr_explain: list[str]
    fault: dict | None               # arch/stage2_fault autopsy of a stage-2 abort, to_dict()


def vcpu_view(pa: int, v: VcpuState, running_on: list[int], ram: list | None = None) -> VcpuView:
    """Decode a vCPU's registers and its last exit; `ram`: guest RAM as (IPA, size) pairs."""
    ex = GuestExitRecord.of(v)
    dec = esr.decode(v.exit.esr, "ESR_EL2")
    fault = None
    if ex.kind in ("dabt", "iabt"):
        fault = stage2_fault.autopsy(v.exit.esr, v.exit.far, v.exit.hpfar, ram, None).to_dict()
    return VcpuView(pa, list(running_on), list(v.x), v.pc, v.pstate, pstate.mode_name(v.pstate), v.sp_el0,
                    v.sp_el1, v.hcr_el2, decode.decode("HCR_EL2", v.hcr_el2).summary, v.vttbr_el2,
                    stage2.vmid(v.vttbr_el2, v.vtcr_el2), v.vtcr_el2, _vtcr_text(v.vtcr_el2), dict(v.el1), ex,
                    dec.summary, list(dec.explain or []), fault)


def _vtcr_text(vtcr: int) -> str:
    problems = stage2.vtcr_problems(vtcr)
    try:
        s = stage2.stage2_start(vtcr)
    except pagetable.WalkError as e:
        return str(e)
    text = f"{s.ia_bits}-bit IPA, {s.granule // 1024}K granule, start level {s.start_level}, {s.tables} start table(s)"
    return text + "".join(f"; {p.text}" for p in problems)

"""Which world each CPU is in: the host (the kernel at EL1) or the lab's guest (EL1 under stage 2).

The stub's world switch (RKVM_HVC_VCPU_RUN, stub/el2_world_switch.S) sets HCR_EL2.VM while a guest
runs and keeps the host's EL1 state in the CPU's host save area (RKVM_HOST_*); the vCPU structure
(RKVM_VCPU_*) holds the guest's state between runs and its last exit record. While a CPU is in the
guest its live EL1 registers are the guest's: the host's are the save area's.
"""

import contextlib
from dataclasses import dataclass

import gdb

from gdb_rkvm.arch import regfields
from gdb_rkvm.arch.stage2 import vmid
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.stub_abi import HostSave, VcpuState
from gdb_rkvm.model.world import GUEST_DEBUG_SIZE, CpuWorld, GuestModule, HostSaveSummary, guest_module


@dataclass(frozen=True)
class World:
    """One CPU's world as the live registers and the stub's save area show it."""

    cpu: int
    in_guest: bool              # HCR_EL2.VM = 1: EL1&0 runs under stage 2 (the guest)
    hcr_el2: int
    vttbr_el2: int
    vtcr_el2: int
    vmid: int | None            # VTTBR_EL2.VMID while in the guest, else None
    host: HostSave | None       # the stub's host save area for this CPU (None: no rkvm stub, or unreadable)
    vcpu_pa: int | None         # the vCPU running, or that ran last on this CPU

    @property
    def name(self) -> str:
        """'guest' or 'host'."""
        return "guest" if self.in_guest else "host"

    def describe(self) -> str:
        """One line: 'guest (VMID 1, VTTBR_EL2 0x1...)' or 'host'."""
        if not self.in_guest:
            return "host"
        return f"guest (VMID {self.vmid}, VTTBR_EL2 {self.vttbr_el2:#x})"


def stub_pa() -> int | None:
    """The physical address of the rkvm stub (rkvm_debug.stub_pa), or None without rkvm.ko's stub.

    A CPU in the guest reads kernel VAs through the guest's regime, so the variable may be unreadable
    from there: then any CPU's VBAR_EL2 that holds the stub (its magic, read physically) names it."""
    with host_view():
        pa = t.read_u64_symbol("rkvm_debug.stub_pa")
    if pa and kernel_facts.is_rkvm_stub(pa):
        return pa
    for n, _ in t.cpu_threads():
        try:
            vbar = t.read_register("VBAR_EL2", n)
        except RkvmError:
            continue
        if vbar and kernel_facts.is_rkvm_stub(vbar):
            return vbar
    return None


@contextlib.contextmanager
def host_view():
    """Run a block that reads kernel VAs with a host CPU selected when the selected one is in the guest
    (its EL1 regime, the guest's, does not map the kernel). Unchanged when no host CPU is at EL1."""
    thread = gdb.selected_thread()
    other = t.cpu_at_el1() if thread is not None and t.in_guest(t.cpu_of(thread)) else None
    if other is None:
        yield
        return
    with t.on_thread(t.thread_for_cpu(other)):
        yield


EL1_CONTEXT = tuple(stub_abi.el1_fields())


def el1_live(cpu: int) -> dict[str, int]:
    """The EL1 registers an EL1 context holds (RKVM_EL1_*) and SP_EL1 (the vCPU and the host save area keep
    it apart from that context), live; those the gdbstub does not expose are absent."""
    out = {}
    for name in (*EL1_CONTEXT, "SP_EL1"):
        try:
            out[name] = t.read_register(name, cpu)
        except RkvmError:
            pass
    return out


def cpu_world(cpu: int) -> CpuWorld:
    """`cpu`'s world as a record: world(), the host save area summarised, the live EL1 registers."""
    w = world(cpu)
    return CpuWorld(w.name, w.vmid, w.hcr_el2, w.vttbr_el2, w.vtcr_el2, w.vcpu_pa,
                    HostSaveSummary.of(w.host) if w.host else None, el1_live(cpu))


def read_guest_module() -> GuestModule | None:
    """rkvm.ko's rkvm_guest_debug (its debugfs guest state), or None without it or before it is filled."""
    addr = t.symbol_address("rkvm_guest_debug")
    if addr is None:
        return None
    try:
        with host_view():
            data = t.read_kernel_virtual(addr, GUEST_DEBUG_SIZE)
    except (RkvmError, gdb.error):
        return None
    return guest_module(data, stub_abi.value("RKVM_STUB_MAGIC"))


def vcpu_pa_of(cpu: int) -> int | None:
    """The vCPU `cpu` runs or ran last (the stub's host save area), else the one rkvm.ko has."""
    w = world(cpu)
    if w.vcpu_pa:
        return w.vcpu_pa
    m = read_guest_module()
    return m.vcpu_pa if m and m.vcpu_pa else None


def host_save(cpu: int) -> HostSave | None:
    """`cpu`'s host save area in the rkvm stub (RKVM_HOST_*), or None (no stub, no slot, unreadable)."""
    pa = stub_pa()
    if pa is None:
        return None
    try:
        stub = t.read_physical(pa, stub_abi.value("RKVM_STUB_SIZE"))
    except RkvmError:
        return None
    return stub_abi.host_save(stub, cpu)


def read_vcpu(pa: int) -> VcpuState:
    """The vCPU structure at physical address `pa` (RKVM_VCPU_*). RkvmError if it cannot be read."""
    data = t.read_physical(pa, stub_abi.value("RKVM_VCPU_SIZE"))
    state = stub_abi.vcpu_state(data)
    if state is None:
        raise RkvmError(f"vCPU at PA {pa:#x}: only {len(data)} bytes readable")
    return state


def world(cpu: int) -> World:
    """`cpu`'s world: in the guest when HCR_EL2.VM is set (the stub's world switch sets it only for the
    guest's run), with the stub's host save area and the vCPU it names."""
    hcr = t.read_register("HCR_EL2", cpu)
    vttbr = t.read_register("VTTBR_EL2", cpu)
    vtcr = t.read_register("VTCR_EL2", cpu)
    in_guest = regfields.stage2_enabled(hcr)
    host = host_save(cpu)
    vcpu_pa = host.vcpu_pa if host is not None and host.vcpu_pa else None
    return World(cpu, in_guest, hcr, vttbr, vtcr, vmid(vttbr, vtcr) if in_guest else None, host, vcpu_pa)


def last_vcpu(cpu: int) -> VcpuState | None:
    """The vCPU running on `cpu`, or the one that ran there last; None if no guest ever ran on it."""
    w = world(cpu)
    return read_vcpu(w.vcpu_pa) if w.vcpu_pa else None

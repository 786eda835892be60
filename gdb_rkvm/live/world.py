"""Which world each CPU is in: the host (the kernel at EL1) or the lab's guest (EL1 under stage 2).

The stub's world switch (RKVM_HVC_VCPU_RUN, stub/el2_world_switch.S) sets HCR_EL2.VM while a guest
runs and keeps the host's EL1 state in the CPU's host save area (RKVM_HOST_*); the vCPU structure
(RKVM_VCPU_*) holds the guest's state between runs and its last exit record. While a CPU is in the
guest its live EL1 registers are the guest's: the host's are the save area's.
"""

from dataclasses import dataclass

from gdb_rkvm.arch import regfields
from gdb_rkvm.arch.stage2 import vmid
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.stub_abi import HostSave, VcpuState


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
    """The physical address of the rkvm stub (rkvm_debug.stub_pa), or None without rkvm.ko's stub."""
    pa = t.read_u64_symbol("rkvm_debug.stub_pa")
    if pa and kernel_facts.is_rkvm_stub(pa):
        return pa
    return None


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

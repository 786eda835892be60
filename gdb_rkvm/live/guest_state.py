"""The guest as the snapshot records it: the vCPU that runs or ran last (its registers, the stage 2 it
runs with, its last exit), whether VTTBR_EL2's table base is RAM or virt_to_phys() of a vmalloc VA,
and rkvm.ko's own view of its guest."""

import gdb

from gdb_rkvm.arch import stage2
from gdb_rkvm.arch.pagetable import WalkError
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, world
from gdb_rkvm.live.v2p_origin import virt_to_phys_origin
from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.world import GuestExitRecord, GuestModule, GuestState
from gdb_rkvm.model.stub_abi import VcpuState

def baddr(vttbr: int) -> int:
    """VTTBR_EL2.BADDR as a page address (CnP, bit 0, and the VMID left out): the page is what RAM and
    virt_to_phys() are checked against, and the lab's start tables are 4K aligned."""
    return stage2.vttbr_baddr(vttbr) & ~0xFFF


def guest_ram(module: GuestModule | None) -> list[list[int]]:
    """Guest RAM as [IPA, size] pairs: what rkvm.ko says, else the lab ABI's RKVM_GUEST_RAM_*."""
    if module is not None and module.ram_size:
        return [[module.ram_ipa, module.ram_size]]
    return [[stub_abi.value("RKVM_GUEST_RAM_IPA"), stub_abi.value("RKVM_GUEST_RAM_SIZE")]]


def in_ram(pa: int, ram: list[tuple[int, int]]) -> bool | None:
    return any(s <= pa < e for s, e in ram) if ram else None


def guest_state(cpus: list[int], host_ram: list[tuple[int, int]], marks=None) -> GuestState | None:
    """The guest of the vCPU the CPUs name (the first in the guest, else the one that ran last, else
    rkvm.ko's), or None when there is no vCPU to read."""
    module = world.read_guest_module()
    pa = None
    for n in sorted(cpus, key=lambda n: not world.world(n).in_guest):
        pa = world.world(n).vcpu_pa
        if pa:
            break
    pa = pa or (module.vcpu_pa if module else None)
    if not pa:
        return None
    v = world.read_vcpu(pa)
    return state_of(pa, v, module, host_ram, marks)


def state_of(pa: int, v: VcpuState, module: GuestModule | None, host_ram, marks=None) -> GuestState:
    base = baddr(v.vttbr_el2)
    ram_ok = in_ram(base, host_ram)
    try:
        with world.host_view():
            origin = virt_to_phys_origin(base, marks, require_symbol=False)
        if origin and ram_ok is not False and not _tables_moved(base, origin.real_pa, v.vtcr_el2):
            origin = None   # RAM either way: only believed when the real tables are there and VTTBR's are not
    except RkvmError:
        origin = None
    return GuestState(vcpu_pa=pa, pc=v.pc, pstate=v.pstate, sp_el1=v.sp_el1, hcr_el2=v.hcr_el2,
                      vttbr_el2=v.vttbr_el2, vtcr_el2=v.vtcr_el2, exit=GuestExitRecord.of(v), el1=dict(v.el1),
                      vttbr_baddr_in_ram=ram_ok, vttbr_origin=origin, module=module, ram=guest_ram(module))


def _tables_moved(baddr: int, real: int | None, vtcr: int) -> bool:
    """Whether the stage-2 start table the VMM filled (at `real`, with valid descriptors) is not what the
    walker reads at VTTBR_EL2's `baddr` (other bytes): a RAM address virt_to_phys() gave by coincidence,
    with the tables really there, is not taken for the mistake."""
    if real is None:
        return False
    try:
        size = min(stage2.stage2_start(vtcr).table_bytes or 4096, 0x10000)
    except WalkError:
        size = 4096
    filled = t.read_physical(real, size)
    valid = any(int.from_bytes(filled[i:i + 8], "little") & 1 for i in range(0, size, 8))
    return valid and t.read_physical(baddr, size) != filled


def host_ram() -> list[tuple[int, int]]:
    with world.host_view():
        return kernel_facts.ram_ranges()


def read_or_none(cpus: list[int], problems: list[str], marks=None) -> GuestState | None:
    """guest_state(), a failure recorded in `problems` instead of raised."""
    try:
        return guest_state(cpus, host_ram(), marks)
    except (RkvmError, gdb.error) as e:
        problems.append(f"guest: {e}")
        return None

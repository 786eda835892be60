"""Print the guest's EL1 registers beside the host's save area for the selected CPU (the tour's view,
until `rkvm vcpu` shows it as a command)."""

import gdb

from gdb_rkvm.arch import exits, stage2_fault
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, world
from gdb_rkvm.model import guest_explain, stub_abi, world_text


def host_area(cpu: int, w: world.World) -> stub_abi.HostSave | None:
    """`cpu`'s host save area. world.world() finds the stub through rkvm_debug, a kernel variable that
    cannot be read while the CPU runs the guest (its TTBR1_EL1 is the guest's): then through VBAR_EL2,
    which holds the stub's PA once it is installed."""
    if w.host is not None:
        return w.host
    vbar = t.read_register("VBAR_EL2", cpu)
    if not vbar or not kernel_facts.is_rkvm_stub(vbar):
        return None
    return stub_abi.host_save(t.read_physical(vbar, stub_abi.value("RKVM_STUB_SIZE")), cpu)


def el1_lines(cpu: int | None = None) -> list[str]:
    """The table for `cpu` (default: the selected thread's CPU)."""
    if cpu is None:
        cpu = t.cpu_of(gdb.selected_thread())
    w = world.world(cpu)
    live = {}
    for name in world_text.SHOWN:
        try:
            live[name] = t.read_register(name, cpu)
        except RkvmError:
            continue   # a register this QEMU's gdbstub does not expose: left out, not guessed
    return world_text.el1_beside_host(cpu, w.in_guest, live, host_area(cpu, w))


def show(cpu: int | None = None) -> None:
    _print(el1_lines, cpu)


def fault_lines(cpu: int | None = None) -> list[str]:
    """The stage 2 abort in the live ESR_EL2/FAR_EL2/HPFAR_EL2 (at EL2, on a guest exit): autopsy and
    explanation. Guest RAM is the lab's RKVM_GUEST_RAM_* range."""
    esr, far, hpfar = (t.read_register(n, cpu) for n in ("ESR_EL2", "FAR_EL2", "HPFAR_EL2"))
    ram = [(stub_abi.value("RKVM_GUEST_RAM_IPA"), stub_abi.value("RKVM_GUEST_RAM_SIZE"))]
    f = stage2_fault.autopsy(esr, far, hpfar, ram)
    return [f"ESR_EL2 {esr:#x}  FAR_EL2 {far:#x}  HPFAR_EL2 {hpfar:#x}", f.what_the_guest_did(), f.fault_text(),
            *guest_explain.explain_fault(f)]


def exit_record_lines(cpu: int | None = None) -> list[str]:
    """The exit the stub saved in the vCPU that ran last on `cpu`, explained."""
    if cpu is None:
        cpu = t.cpu_of(gdb.selected_thread())
    w = world.world(cpu)
    host = host_area(cpu, w)
    if host is None or not host.vcpu_pa:
        return [f"CPU {cpu}: no guest has run here"]
    v = world.read_vcpu(host.vcpu_pa)
    e = v.exit
    kind = e.reason if e.reason in ("irq", "fiq", "serror") else "sync"
    head = (f"CPU {cpu} is in the {w.name}; vCPU at PA {host.vcpu_pa:#x}: exit {e.count} ({e.reason}), ESR_EL2 "
            f"{e.esr:#x}, FAR_EL2 {e.far:#x}, HPFAR_EL2 {e.hpfar:#x}; the guest resumes at PC {v.pc:#x}")
    return [head, *guest_explain.explain_exit(exits.classify(e.esr, kind))]


def _print(lines_of, *args) -> None:
    try:
        print("\n".join(lines_of(*args)))
    except RkvmError as e:
        print(f"rkvm: {e}")


def show_fault(cpu: int | None = None) -> None:
    _print(fault_lines, cpu)


def show_exit(cpu: int | None = None) -> None:
    _print(exit_record_lines, cpu)

"""Print the guest's EL1 registers beside the host's save area for the selected CPU (the tour's view,
until `rkvm vcpu` shows it as a command)."""

import gdb

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import world
from gdb_rkvm.model import world_text


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
    return world_text.el1_beside_host(cpu, w.in_guest, live, w.host)


def show(cpu: int | None = None) -> None:
    try:
        print("\n".join(el1_lines(cpu)))
    except RkvmError as e:
        print(f"rkvm: {e}")

"""EL2 code symbols in GDB: the stub ELF (linked at 0) placed at the physical address it runs at.

EL2 runs with its MMU off, so its PCs are physical; `add-symbol-file ELF -o PA` gives GDB names and
line numbers there (break <stub symbol>, list, info symbol $pc, stepping by source line).
"""

from pathlib import Path

import gdb

from gdb_rkvm.model.elf_check import check_aarch64_elf
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import UnsafeArgument, gdb_arg
from gdb_rkvm.model.stub_symbols import STUB_ELF
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE, StopCheckBreakpoint


def loaded() -> dict:
    """{elf path: load offset} of EL2 ELFs GDB has symbols for."""
    return STATE.el2_elfs


def load(elf: Path, offset: int) -> str:
    """(Re)place `elf`'s symbols at `offset`. Returns what was done, in one line."""
    elf = Path(elf).resolve()
    check_aarch64_elf(elf, "EL2 code ELF")
    current = loaded().get(str(elf))
    if current == offset:
        return f"rkvm: symbols of {elf.name} already at {offset:#x}"
    if current is not None:
        _remove(elf, current)
    try:
        quoted = gdb_arg(elf)
    except UnsafeArgument as e:
        raise RkvmError(f"EL2 code ELF refused: {e}") from None
    gdb.execute(f"add-symbol-file {quoted} -o {offset:#x}", to_string=True)
    loaded()[str(elf)] = offset
    moved = f" (moved from {current:#x})" if current is not None else ""
    return f"rkvm: loaded {elf.name} symbols at PA {offset:#x}{moved}"


def _remove(elf: Path, offset: int) -> None:
    for obj in gdb.objfiles():
        if obj.filename and Path(obj.filename).resolve() == elf:
            try:
                gdb.execute(f"remove-symbol-file -a {offset:#x}", to_string=True)
            except gdb.error:
                pass
            break
    loaded().pop(str(elf), None)


def load_rkvm_stub(pa: int) -> str | None:
    """Place the lab stub's symbols at `pa` if the stub ELF exists."""
    if not STUB_ELF.is_file():
        return None
    return load(STUB_ELF, pa)


class InstallHookBreakpoint(StopCheckBreakpoint):
    """Internal breakpoint on rkvm.ko's rkvm_debug_event: on an install event, (re)load the stub's
    symbols at the stub PA the module reports, and tell listeners (hvc catch) that VBAR_EL2 moved."""

    listeners: list = []   # callables(new_vbar) -> True when they need the target stopped

    def __init__(self):
        super().__init__("rkvm_debug_event", internal=True)
        self.silent = True

    def check(self):
        try:
            ev = t.debug_event_at_hook()
            if ev.event in ("installed-cpu", "installed-all"):
                if loaded().get(str(STUB_ELF.resolve())) != ev.stub_pa:
                    line = load_rkvm_stub(ev.stub_pa)
                    if line:
                        gdb.write(line + "\n")
            if ev.event == "installed-cpu":  # VBAR_EL2 of that CPU is now arg
                vbar = ev.arg
                # a listener (hvc catch) that must move its breakpoints asks for a stop: it re-arms there
                return any(listener(vbar) for listener in list(self.listeners))
        except (gdb.error, RkvmError, ValueError, OverflowError) as e:
            gdb.write(f"rkvm: stub symbols not updated: {e}\n")
        return False

"""Convenience functions: $rkvm_el(), $rkvm_sysreg("NAME") and $rkvm_world()."""

import gdb

from gdb_rkvm.arch import regfields, sysregs
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.guest_strings import c_string


class RkvmElFunction(gdb.Function):
    """$rkvm_el() - the selected CPU's current exception level (0-3), from PSTATE.EL in $cpsr.

Example: break some_function if $rkvm_el() == 2"""

    def __init__(self):
        super().__init__("rkvm_el")

    def invoke(self):
        try:
            return t.current_el()
        except RkvmError as e:
            raise gdb.GdbError(f"$rkvm_el: {e}") from None


class RkvmSysregFunction(gdb.Function):
    """$rkvm_sysreg("NAME") - a system register of the selected CPU by its architectural name.

Example: p/x $rkvm_sysreg("SCTLR_EL1")   (QEMU 7.2 calls it $SCTLR)"""

    def __init__(self):
        super().__init__("rkvm_sysreg")

    def invoke(self, name):
        try:
            text = c_string(name, 64) if name.type.code in (gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_PTR) else str(name)
        except gdb.error as e:
            raise gdb.GdbError(f"$rkvm_sysreg: cannot read the register name: {e}") from None
        reg = sysregs.lookup(text)
        if reg is None:
            raise gdb.GdbError(f"$rkvm_sysreg: unknown register '{escape(text)}' (closest: "
                               f"{', '.join(sysregs.closest(text)) or 'none'})")
        try:
            value = t.read_register(reg.name)
        except RkvmError as e:
            raise gdb.GdbError(f"$rkvm_sysreg: {e}") from None
        return gdb.Value(value).cast(gdb.lookup_type("unsigned long long"))


def world_name(hcr_el2: int) -> str:
    """'guest' when HCR_EL2.VM is set (EL1&0 runs under stage 2), else 'host'."""
    return "guest" if regfields.stage2_enabled(hcr_el2) else "host"


class RkvmWorldFunction(gdb.Function):
    """$rkvm_world([cpu]) - "host" or "guest": the world the selected CPU (or CPU `cpu`) is in, from HCR_EL2.VM.

Example: break *0x80000000 if $_streq($rkvm_world(), "guest")"""

    def __init__(self):
        super().__init__("rkvm_world")

    def invoke(self, cpu=None):
        try:
            n = int(cpu) if cpu is not None else None
            return gdb.Value(world_name(t.read_register("HCR_EL2", n)))
        except (RkvmError, gdb.error) as e:
            raise gdb.GdbError(f"$rkvm_world: {e}") from None

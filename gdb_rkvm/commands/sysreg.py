
from gdb_rkvm.arch import decode, sysregs
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.completion import completes
from gdb_rkvm.commands.format import fields_block


@only_when(STOPPED)
class RkvmSysreg(RkvmCommand):
    """Read and decode system registers by their architectural names.

Usage: rkvm sysreg NAME... [--all] [--cpu N] [--json] [--explain]
NAME is the Arm ARM name (HCR_EL2, SCTLR_EL1, TCR_EL1, VTCR_EL2, MAIR_EL1, ESR_EL2, ID_AA64MMFR1_EL1...),
whatever this QEMU calls it (QEMU 7.2 says SCTLR for SCTLR_EL1). Tab completes names.
Shown: the fields that are set, and the ones the register is known for even at 0 (SCTLR_EL2.M,
HCR_EL2.VM/E2H), marked where they differ from the Arm ARM's reset value; --all shows every field.
VBAR_EL1/VBAR_EL2 say what they point at.
Example:
  (gdb) rkvm sysreg HCR_EL2 SCTLR_EL2
  HCR_EL2 = 0x80000000  RW, VM=no stage 2 (EL1 runs as a host, not a guest), E2H=non-VHE: ...
  SCTLR_EL2 = 0x30c50830  EOS EIS, M=EL2 MMU off (EL2 addresses are physical), ..."""

    name = "sysreg"
    explains = True

    def add_arguments(self, p):
        completes(p.add_argument("names", nargs="+"), sysregs.names)
        p.add_argument("--all", action="store_true", help="every field, zeros included")
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        out = []
        for name in args.names:
            reg = sysregs.lookup(name)
            if reg is None and name.upper() not in ("CPSR", "PSTATE"):
                hint = ", ".join(sysregs.closest(name)) or "see 'rkvm sysreg' completion"
                raise RkvmError(f"unknown system register '{name}' (closest: {hint})")
            canonical = reg.name if reg else "CPSR"
            value = t.read_register(canonical, cpu)
            dec = decode.decode(canonical, value, all_fields=args.all)
            out.append({**dec.to_dict(), "cpu": cpu, "doc": reg.doc if reg else "PSTATE",
                        "encoding": list(reg.encoding) if reg else None, "points_at": _points_at(canonical, value)})
        return {"registers": out}

    def format(self, r, args):
        lines = []
        for d in r["registers"]:
            summary = "" if d["summary"] == d["hex"] else d["summary"]  # nothing decoded: say the value once
            lines.append("  ".join(x for x in (f"{d['register']} = {d['hex']}", d["points_at"], summary) if x))
            if (len(r["registers"]) == 1 or args.explain or args.all) and d["fields"]:
                lines.append(fields_block(d["fields"]))
            if args.explain:
                lines += [f"  {x}" for x in d["explain"]]
        return "\n".join(lines)


def _points_at(name: str, value: int) -> str | None:
    """For a vector base register: the symbol there and, for VBAR_EL2 (a PA), what kind of table."""
    if name == "VBAR_EL1":
        sym = t.symbol_at(value)
        return f"<{sym}>" if sym else None
    if name == "VBAR_EL2":
        marks = kernel_facts.landmarks([value])
        sym = kernel_facts.el2_symbol(value, marks) if value else None
        return " ".join(x for x in (f"<{sym}>" if sym else "", classify(value, marks).text) if x)
    return None

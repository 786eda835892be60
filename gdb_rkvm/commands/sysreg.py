
from ..arch import decode, sysregs
from ..errors import RkvmError
from ..target import gdb_target as t
from .base import STOPPED, RkvmCommand, only_when
from .completion import completes
from .format import fields_block


@only_when(STOPPED)
class RkvmSysreg(RkvmCommand):
    """Read and decode system registers by their architectural names.

Usage: rkvm sysreg NAME... [--cpu N] [--json] [--explain]
NAME is the Arm ARM name (HCR_EL2, SCTLR_EL1, TCR_EL1, VTCR_EL2, MAIR_EL1, ESR_EL2, ID_AA64MMFR1_EL1...),
whatever this QEMU calls it (QEMU 7.2 says SCTLR for SCTLR_EL1). Tab completes names.
Example:
  (gdb) rkvm sysreg HCR_EL2 SCTLR_EL2
  HCR_EL2 = 0x80000000  RW
  SCTLR_EL2 = 0x30c50830  EOS EIS"""

    name = "sysreg"
    explains = True

    def add_arguments(self, p):
        completes(p.add_argument("names", nargs="+"), sysregs.names)
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
            dec = decode.decode(canonical, value)
            out.append({**dec.to_dict(), "cpu": cpu, "doc": reg.doc if reg else "PSTATE",
                        "encoding": list(reg.encoding) if reg else None})
        return {"registers": out}

    def format(self, r, args):
        lines = []
        for d in r["registers"]:
            lines.append(f"{d['register']} = {d['hex']}  {d['summary']}")
            if len(r["registers"]) == 1 or args.explain:
                lines.append(fields_block(d["fields"]))
            if args.explain:
                lines += [f"  {x}" for x in d["explain"]]
        return "\n".join(lines)

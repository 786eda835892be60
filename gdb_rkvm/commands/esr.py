from ..arch import esr
from ..errors import RkvmError
from ..target import gdb_target as t
from .base import STOPPED, RkvmCommand, parse_int
from .format import fields_block


class RkvmEsr(RkvmCommand):
    """Decode an Exception Syndrome Register value: a given one, or the live ESR_EL1/ESR_EL2.

Usage: rkvm esr [VALUE] [--el 1|2] [--cpu N] [--json] [--explain]
Without VALUE reads ESR_EL2 (or ESR_EL1 with --el 1) of the selected CPU.
Example:
  (gdb) rkvm esr 0x5a000042
  ESR_EL2 = 0x5a000042  EC 0x16 HVC64: HVC #0x42
      EC[31:26] = 0x16  HVC64: HVC instruction, AArch64
      IL[25] = 0x1  32-bit instruction
      imm16[15:0] = 0x42  #0x42"""

    name = "esr"
    explains = True

    def add_arguments(self, p):
        p.add_argument("value", nargs="?")
        p.add_argument("--el", type=int, choices=(1, 2), default=2)
        self.add_cpu_argument(p)

    def run(self, args):
        register = f"ESR_EL{args.el}"
        if args.value is not None:
            value = parse_int(args.value, "ESR value")
            if value < 0 or value >> 64:
                raise RkvmError(f"{args.value} does not fit in 64 bits")
            cpu = None
        else:
            STOPPED.check()
            cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
            value = t.read_register(register, cpu)
        return {**esr.decode(value, register).to_dict(), "cpu": cpu}

    def format(self, d, args):
        lines = [f"{d['register']} = {d['hex']}  {d['summary']}", fields_block(d["fields"])]
        if args.explain:
            lines += [f"  {x}" for x in d["explain"]]
        return "\n".join(lines)

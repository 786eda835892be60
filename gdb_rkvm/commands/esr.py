from gdb_rkvm.arch import esr
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, parse_int
from gdb_rkvm.commands.format import fields_block


class RkvmEsr(RkvmCommand):
    """Decode an Exception Syndrome Register value: a given one, or the live ESR_EL1/ESR_EL2.

Usage: rkvm esr [VALUE] [--el 1|2] [--cpu N] [--json] [--explain]
Without VALUE reads ESR_EL2 (or ESR_EL1 with --el 1) of the selected CPU; while it still reads 0, no
exception has been taken to that EL yet (a taken one with EC 0x00 has IL = 1), and it says so.
A VALUE is decoded as "ESR" (--el names the register it came from).
Example:
  (gdb) rkvm esr 0x5a000042
  ESR = 0x5a000042  EC 0x16 HVC64: HVC #0x42
      EC[31:26] = 0x16  HVC64: HVC instruction, AArch64
      IL[25] = 0x1  32-bit instruction
      imm16[15:0] = 0x42  #0x42"""

    name = "esr"
    explains = True

    def add_arguments(self, p):
        p.add_argument("value", nargs="?")
        p.add_argument("--el", type=int, choices=(1, 2), default=None)
        self.add_cpu_argument(p)

    def run(self, args):
        el = args.el or 2
        register = f"ESR_EL{el}"
        never = False
        if args.value is not None:
            value = parse_int(args.value, "ESR value")
            if value < 0 or value >> 64:
                raise RkvmError(f"{args.value} does not fit in 64 bits")
            cpu = None
            if args.el is None:
                register = "ESR"   # a typed value: which EL's register it came from is not known
        else:
            STOPPED.check()
            cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
            value = t.read_register(register, cpu)
            never = esr.never_taken(value)
        d = {**esr.decode(value, register).to_dict(), "cpu": cpu, "never_taken": never}
        if never:
            d["summary"] = esr.never_taken_summary(el)
        return d

    def format(self, d, args):
        if d.get("never_taken"):
            return f"{d['register']} = {d['hex']}  {d['summary']}"
        lines = [f"{d['register']} = {d['hex']}  {d['summary']}", fields_block(d["fields"])]
        if args.explain:
            lines += [f"  {x}" for x in d["explain"]]
        return "\n".join(lines)

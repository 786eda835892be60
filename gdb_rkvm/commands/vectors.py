from gdb_rkvm.arch import disasm, regfields, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when


def read_vector_table(el: int, vbar: int, el2_mmu_on: bool) -> bytes:
    """The 2 KiB at VBAR_ELx: physical for EL2 while its MMU is off, else virtual (current regime)."""
    if el == 2 and not el2_mmu_on:
        return t.read_physical(vbar, vectors.TABLE_SIZE)
    return t.read_virtual(vbar, vectors.TABLE_SIZE)


@only_when(STOPPED)
class RkvmVectors(RkvmCommand):
    """The 16 exception vectors at VBAR_EL1 or VBAR_EL2, named, symbolized and disassembled.

Usage: rkvm vectors [el1|el2] [--cpu N] [--count K] [--json] [--explain]
EL2 vectors are read as physical memory (EL2 runs with its MMU off). K instructions per slot (default 3).
Example:
  (gdb) rkvm vectors el2
  VBAR_EL2 = 0x40a60000 on CPU 0: the rkvm EL2 stub
  +0x400  Lower EL using AArch64, Synchronous  0x40a60400 <rkvm_vec_lower64_sync>
          0x40a60400  b #0x40a60b00 <rkvm_stub_el1_sync>"""

    name = "vectors"
    explains = True

    def add_arguments(self, p):
        p.add_argument("el", nargs="?", default="el2", choices=("el1", "el2"))
        self.add_cpu_argument(p)
        p.add_argument("--count", type=int, default=3)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        el = int(args.el[-1])
        vbar = t.read_register(f"VBAR_EL{el}", cpu)
        mmu_on = regfields.mmu_enabled(t.read_register("SCTLR_EL2", cpu)) if el == 2 else True
        marks = kernel_facts.landmarks([vbar] if el == 2 else [])
        table = read_vector_table(el, vbar, mmu_on)
        if args.count < 0:
            raise RkvmError(f"--count {args.count}: 0 or more instructions per slot")

        def name(addr):
            return kernel_facts.el2_symbol(addr, marks) if el == 2 and not mmu_on else t.symbol_at(addr)

        slots = []
        for off, slot in vectors.slots():
            addr = vbar + off
            insns = disasm.disassemble(table[off:off + vectors.SLOT_SIZE], addr, args.count)
            slots.append({"offset": off, "slot": slot, "address": addr, "symbol": name(addr),
                          "instructions": [{"address": i.address, "text": _with_target(i, name)} for i in insns]})
        return {"cpu": cpu, "el": el, "vbar": vbar, "physical": el == 2 and not mmu_on,
                "points_at": classify(vbar, marks).text if el == 2 else None, "slots": slots}

    def format(self, r, args):
        head = f"VBAR_EL{r['el']} = {r['vbar']:#x} on CPU {r['cpu']}"
        if r["points_at"]:
            head += f": {r['points_at']}"
        lines = [head]
        for s in r["slots"]:
            sym = f" <{s['symbol']}>" if s["symbol"] else ""
            lines.append(f"+{s['offset']:#05x}  {s['slot']:<36} {s['address']:#x}{sym}")
            lines += [f"        {i['address']:#x}  {i['text']}" for i in s["instructions"]]
        if args.explain:
            lines.append(_explain(r))
        return "\n".join(lines)


def _with_target(insn: disasm.Insn, name) -> str:
    """The instruction, and the symbol a direct branch goes to: `b #0x40d04cc4 <rkvm_stub_unexpected>`."""
    target = disasm.branch_target(insn)
    sym = name(target) if target is not None else None
    return insn.text() + (f" <{sym}>" if sym else "")


def _explain(r) -> str:
    if r["el"] == 2:
        return ("An exception taken to EL2 jumps to VBAR_EL2 + the slot's offset. An HVC from EL1 uses "
                "+0x400 (Lower EL using AArch64, Synchronous); a fault inside EL2 code uses +0x200 (Current EL "
                "with SPx). These addresses are physical: EL2's MMU is off"
                + (", and the table was read from physical memory." if r["physical"] else "."))
    return ("An exception taken to EL1 jumps to VBAR_EL1 + the slot's offset: +0x400 for a syscall or fault "
            "from user space, +0x200 for one in the kernel itself.")


from pathlib import Path

from .. import stub_abi
from ..errors import RkvmError
from ..stub_symbols import STUB_ELF
from ..target import el2_symbols, kernel_facts
from ..target.snapshot import vbar_origin
from ..vbar_el2 import classify
from ..target import gdb_target as t
from .base import STOPPED, RkvmCommand, only_when, parse_int
from .completion import FILENAME, completes


def _why_not_the_stub(vbar: int, stub_pa: int | None, marks) -> str:
    """A sentence on what a VBAR_EL2 that is not the stub is, naming virt_to_phys() when it fits."""
    text = f"VBAR_EL2 = {vbar:#x} is {classify(vbar, marks).text}"
    origin = vbar_origin(vbar)
    if origin:
        sym = f" <{origin['symbol']}>" if origin["symbol"] else ""
        text += (f"; it equals virt_to_phys({origin['va']:#x}{sym}), a {origin['region']} address: "
                 "virt_to_phys() is only valid for the linear map, so this is not where that code is")
        if origin["real_pa"] is not None:
            text += f" (that VA really maps PA {origin['real_pa']:#x})"
    if stub_pa is not None:
        text += f"; the stub page is at PA {stub_pa:#x}"
    return text


@only_when(STOPPED)
class RkvmStub(RkvmCommand):
    """Where the EL2 stub is, per CPU, and its symbols loaded at that physical address.

Usage: rkvm stub [--elf FILE] [--offset N] [--json]
Checks each CPU's VBAR_EL2 against the rkvm stub's page (its magic, or rkvm_debug.stub_pa) and
loads stub/build/el2_stub.elf there (add-symbol-file -o PA), so `break rkvm_stub_ping`, `list`,
`info symbol $pc` and stepping work in EL2 code. With --elf, loads your own EL2 code's ELF (linked
at 0, or give --offset) at VBAR_EL2. Symbols also load by themselves when rkvm.ko reports an install.
Example:
  (gdb) rkvm stub
  CPU 0  VBAR_EL2 0x40a60000  rkvm stub installed
  CPU 1  VBAR_EL2 0x40a60000  rkvm stub installed
  rkvm: loaded el2_stub.elf symbols at PA 0x40a60000"""

    name = "stub"

    def add_arguments(self, p):
        completes(p.add_argument("--elf"), FILENAME)
        p.add_argument("--offset", type=lambda s: parse_int(s, "offset"))

    def run(self, args):
        vbars = {cpu: t.read_register("VBAR_EL2", cpu) for cpu, _ in t.cpu_threads()}
        marks = kernel_facts.landmarks(list(vbars.values()))
        stub_pa = t.read_u64_symbol("rkvm_debug.stub_pa") or None
        if stub_pa is None and marks.rkvm_stub_pas:
            stub_pa = min(marks.rkvm_stub_pas)
        if stub_pa is not None and stub_pa not in marks.rkvm_stub_pas and kernel_facts.is_rkvm_stub(stub_pa):
            marks.rkvm_stub_pas.add(stub_pa)
        cpus = []
        for cpu, vbar in sorted(vbars.items()):
            installed = vbar in marks.rkvm_stub_pas
            cpus.append({"cpu": cpu, "vbar_el2": vbar, "installed": installed,
                         "why_not": None if installed or args.elf else _why_not_the_stub(vbar, stub_pa, marks)})
        loaded = None
        if args.elf:
            base = args.offset if args.offset is not None else next(iter(sorted(set(vbars.values()))), None)
            if not base:
                raise RkvmError("VBAR_EL2 is not set: give --offset PA")
            loaded = el2_symbols.load(Path(args.elf), base)
        elif stub_pa is not None and kernel_facts.is_rkvm_stub(stub_pa):
            loaded = el2_symbols.load_rkvm_stub(args.offset if args.offset is not None else stub_pa)
        return {"cpus": cpus, "stub_pa": stub_pa, "symbols": loaded, "elf": args.elf or str(STUB_ELF),
                "magic_offset": stub_abi.value("RKVM_OFF_MAGIC")}

    def format(self, r, args):
        lines = []
        for c in r["cpus"]:
            state = "rkvm stub installed" if c["installed"] else (c["why_not"] or "your EL2 code")
            lines.append(f"CPU {c['cpu']}  VBAR_EL2 {c['vbar_el2']:#x}  {state}")
        if r["symbols"]:
            lines.append(r["symbols"])
        return "\n".join(lines)

from pathlib import Path

from gdb_rkvm.model import stub_abi
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.stub_symbols import STUB_ELF
from gdb_rkvm.model.el2lint.compare import format_check
from gdb_rkvm.live import el2_copy, el2_symbols, kernel_facts
from gdb_rkvm.live.snapshot import vbar_origin
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int
from gdb_rkvm.commands.completion import FILENAME, completes


def _why_not_the_stub(vbar: int, stub_pa: int | None, marks) -> str:
    """A sentence on what a VBAR_EL2 that is not the stub is, naming virt_to_phys() when it fits."""
    text = f"VBAR_EL2 = {vbar:#x} is {classify(vbar, marks).text}"
    origin = vbar_origin(vbar)
    if origin:
        sym = f" <{origin.symbol}>" if origin.symbol else ""
        text += (f"; it equals virt_to_phys({origin.va:#x}{sym}), a {origin.region} address: "
                 "virt_to_phys() is only valid for the linear map, so this is not where that code is")
        if origin.real_pa is not None:
            text += f" (that VA really maps PA {origin.real_pa:#x})"
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
at 0, or give --offset) at VBAR_EL2, and compares the bytes at each CPU's VBAR_EL2 with the ELF's
code: "identical", or the words that differ and the likely cause (a word the module loader
relocated to a kernel VA, a copy shorter than the code, caches not cleaned after the copy).
Symbols also load by themselves when rkvm.ko reports an install.
Example:
  (gdb) rkvm stub --elf stub/build/el2_stub_jt.elf
  CPU 0  VBAR_EL2 0x40a20000  rkvm stub installed
  rkvm: loaded el2_stub_jt.elf symbols at PA 0x40a20000
  CPU 0: .../el2_stub_jt.elf at PA 0x40a20000: 7 word(s) differ from the ELF: 7 relocated by ...
    +0x0d20 rkvm_stub_jump_table  ELF 0x0000000000000b7c  memory 0xffff800078541b7c  relocated ..."""

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
        copies = self._compare(Path(args.elf), vbars, args.offset) if args.elf else []
        return {"cpus": cpus, "stub_pa": stub_pa, "symbols": loaded, "elf": args.elf or str(STUB_ELF),
                "magic_offset": stub_abi.value("RKVM_OFF_MAGIC"), "copy": copies}

    @staticmethod
    def _compare(elf: Path, vbars: dict, offset: int | None) -> list[dict]:
        """The ELF's code against memory at each distinct VBAR_EL2 (or at --offset), once per value."""
        groups: dict[int, list[int]] = {}
        for cpu, vbar in sorted(vbars.items()):
            groups.setdefault(vbar, []).append(cpu)
        out = []
        for vbar, cpus in groups.items():
            entry = {"cpus": cpus, "vbar_el2": vbar}
            if not vbar and offset is None:
                entry["error"] = "VBAR_EL2 is 0 (not set): nothing to compare"
            else:
                try:
                    entry.update(el2_copy.check(elf, vbar, offset).to_dict())
                except RkvmError as e:
                    entry["error"] = str(e)
            out.append(entry)
        return out

    def format(self, r, args):
        lines = []
        for c in r["cpus"]:
            state = "rkvm stub installed" if c["installed"] else (c["why_not"] or "your EL2 code")
            lines.append(f"CPU {c['cpu']}  VBAR_EL2 {c['vbar_el2']:#x}  {state}")
        if r["symbols"]:
            lines.append(r["symbols"])
        for c in r.get("copy", []):
            who = f"CPU {', '.join(map(str, c['cpus']))}"
            if "error" in c:
                lines.append(f"{who}: {c['error']}")
                continue
            lines += [f"{who}: {line}" if i == 0 else line for i, line in enumerate(format_check(_as_check(c)))]
        return "\n".join(lines)


def _as_check(d: dict):
    """A CopyCheck back from its dict (run() returns JSON-ready dicts; format() prints them)."""
    from gdb_rkvm.model.el2lint.compare import CopyCheck, WordDiff
    chk = CopyCheck(d["elf"], d["base"], d["compared"], [WordDiff(**w) for w in d["diffs"]], d["absolute_words"],
                    d["not_this_code"], d["verdict"], d["causes"])
    return chk

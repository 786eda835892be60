from dataclasses import dataclass, fields

from gdb_rkvm.arch.pagetable import is_upper_half
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.translation import Translation
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, translation
from gdb_rkvm.commands.base import KERNEL_SYMBOLS, STOPPED, RkvmCommand, check_mapped, only_when


@dataclass(frozen=True)
class V2pReport:
    """The kernel's virt_to_phys() formula for `va` against the page-table walk."""

    va: int
    region: str
    formula: int
    formula_is_ram: bool
    walk_pa: int | None
    agree: bool
    verdict: str
    symbol: str | None
    walk: Translation

    def to_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "walk"},
                "walk": self.walk.to_json()}


def v2p_report(va: int, cpu: int) -> V2pReport:
    """The kernel's virt_to_phys() formula against the real translation for `va`."""
    layout = translation.kernel_layout(cpu)
    region = layout.region(va)
    formula = layout.virt_to_phys(va)
    walk = translation.translate(va, cpu)
    real = walk.pa if walk.ok else None
    ram = kernel_facts.ram_ranges()
    formula_is_ram = any(s <= formula < e for s, e in ram)
    return V2pReport(va, region, formula, formula_is_ram, real, real is not None and real == formula,
                     verdict(region, formula, real, walk), t.symbol_at(va), walk)


def verdict(region: str, formula: int, real: int | None, walk: Translation) -> str:
    """One sentence: does virt_to_phys() give the real PA here, and if not why."""
    if real is None:
        return f"not mapped: {walk.fault}"
    if real == formula:
        return "agree: virt_to_phys() is valid for this address"
    kinds = {"modules": "a module address", "vmalloc": "a vmalloc address",
             "kernel image": "a kernel image address", "fixmap": "a fixmap address"}
    kind = kinds.get(region, f"a {region} address")
    return (f"virt_to_phys() is not valid here: this is {kind} (only the linear map, and the kernel image "
            f"through __pa_symbol(), translate by formula); the real PA is {real:#x}")


@only_when(STOPPED, KERNEL_SYMBOLS)
class RkvmV2p(RkvmCommand):
    """Is virt_to_phys() true for this address? The kernel's formula against the page-table walk.

Usage: rkvm v2p VA|SYMBOL [--cpu N] [--json] [--explain]
Example (a module function, mode=vmalloc's mistake):
  (gdb) rkvm v2p rkvm_init
  VA 0xffff8000785404b8 <rkvm_init> in modules
  virt_to_phys() formula  0xb85404b8  (not RAM)
  page-table walk         0x4174a4b8
  virt_to_phys() is not valid here: this is a module address ...; the real PA is 0x4174a4b8"""

    name = "v2p"
    explains = True

    def add_arguments(self, p):
        p.add_argument("va")
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        return v2p_report(translation.address_of(args.va), cpu)

    def format(self, r, args):
        sym = f" <{r.symbol}>" if r.symbol else ""
        lines = [f"VA {r.va:#x}{sym} in {r.region}",
                 f"virt_to_phys() formula  {r.formula:#x}  ({'RAM' if r.formula_is_ram else 'not RAM'})",
                 f"page-table walk         {r.walk_pa:#x}" if r.walk_pa is not None
                 else f"page-table walk         {r.walk.fault}",
                 r.verdict]
        if args.explain:
            lines.append("virt_to_phys() is arithmetic, not a lookup: for the linear map it subtracts PAGE_OFFSET and "
                         "adds PHYS_OFFSET; for anything else it assumes the kernel image and subtracts "
                         "kimage_voffset. vmalloc and module memory is mapped page by page from anywhere in RAM, so "
                         "only a walk of the page tables gives its physical address.")
        return "\n".join(lines)


@only_when(STOPPED)
class RkvmContig(RkvmCommand):
    """Is a virtual range physically contiguous? The PA of each page, and the contiguous runs.

Usage: rkvm contig VA LEN [--cpu N] [--json]
Example (the module's 8-page vmalloc buffer):
  (gdb) rkvm contig rkvm_debug.vmalloc_buf 0x8000
  8 pages, 8 runs: NOT physically contiguous"""

    name = "contig"

    def add_arguments(self, p):
        p.add_argument("va")
        p.add_argument("length")
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        va = translation.address_of(args.va)
        length = translation.address_of(args.length)
        if length <= 0 or length > 1 << 30:
            raise RkvmError(f"length {length:#x} must be between 1 byte and 1 GiB")
        page = 1 << translation.kernel_layout(cpu).page_shift if is_upper_half(va) else 4096
        first, last = va & ~(page - 1), (va + length - 1) & ~(page - 1)
        pages = []
        for p in range(first, last + page, page):
            pages.append({"va": p, "pa": check_mapped(translation.translate(p, cpu))})
        runs = []
        for pg in pages:
            if runs and runs[-1]["pa_end"] == pg["pa"]:
                runs[-1]["pa_end"] += page
                runs[-1]["pages"] += 1
            else:
                runs.append({"va": pg["va"], "pa": pg["pa"], "pa_end": pg["pa"] + page, "pages": 1})
        return {"va": va, "length": length, "page_size": page, "pages": pages, "runs": runs,
                "contiguous": len(runs) == 1}

    def format(self, r, args):
        lines = [f"{len(r['pages'])} pages, {len(r['runs'])} run{'s' if len(r['runs']) != 1 else ''}: "
                 + ("physically contiguous" if r["contiguous"] else "NOT physically contiguous")]
        for run in r["runs"]:
            lines.append(f"  VA {run['va']:#x}  PA {run['pa']:#x}-{run['pa_end']:#x}  ({run['pages']} page"
                         f"{'s' if run['pages'] != 1 else ''})")
        return "\n".join(lines)

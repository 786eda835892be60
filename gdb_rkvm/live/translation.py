"""Page-table walks on the live target: the arch walker fed with whole tables read physically."""

import contextlib

import gdb

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch import regfields
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.kernel_layout import KernelLayout, page_offset_from
from gdb_rkvm.model.translation import Regime, Translation
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.live.gdb_state import STATE


@contextlib.contextmanager
def table_reader(granule: int):
    """A TableReader kept for this stop (tables do not change while the target is stopped)."""
    key = ("tables", granule)
    with t.physical_reader() as read:
        reader = STATE.stop_cache.get(key)
        if reader is None:
            reader = STATE.stop_cache[key] = pt.TableReader(read, granule)
        reader.read_phys = read
        yield reader


REGIME_REGISTERS = {
    "el1": ("TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "SCTLR_EL1"),
    "el2": ("TCR_EL2", "TTBR0_EL2", "MAIR_EL2", "SCTLR_EL2"),
}


def regime_registers(regime: str, cpu: int | None) -> dict:
    """The registers that define a stage-1 regime's translation (el1, el2), read from vCPU `cpu`. Stage 2 and
    the guest's two stages: live/guest_translation.py."""
    return {name: t.read_register(name, cpu) for name in REGIME_REGISTERS[regime]}


def regime_for(va: int, cpu: int | None = None, regime: str = "el1") -> Regime:
    """The stage-1 regime that translates `va` on vCPU `cpu`: el1 picks TTBR0/TTBR1_EL1 by VA[55]; el2
    uses TTBR0_EL2 if SCTLR_EL2.M. RkvmError when `va` is outside its input range."""
    if regime == "el2":
        return _el2_regime(va, regime_registers("el2", cpu))
    return _el1_regime(va, regime_registers("el1", cpu))


def _el2_regime(va: int, regs: dict) -> Regime:
    if not regfields.mmu_enabled(regs["SCTLR_EL2"]):
        return Regime("el2", 1, regs, mmu_on=False, mair=regs["MAIR_EL2"],
                      disabled="EL2 MMU off (SCTLR_EL2.M = 0): EL2 addresses are physical, there are no tables "
                               "to walk")
    geo = _geometry(lambda: pt.stage1_geometry(regs["TCR_EL2"], upper=False, el2_regime=True))
    if va >> geo.ia_bits:
        raise RkvmError(f"{va:#x} is outside the EL2 regime's {geo.ia_bits}-bit range (TCR_EL2.T0SZ)")
    return Regime("el2", 1, regs, table_register="TTBR0_EL2", geometry=geo, mair=regs["MAIR_EL2"])


def _el1_regime(va: int, regs: dict) -> Regime:
    if not regfields.mmu_enabled(regs["SCTLR_EL1"]):
        return Regime("el1", 1, regs, mmu_on=False, mair=regs["MAIR_EL1"],
                      disabled="EL1 MMU off (SCTLR_EL1.M = 0)")
    try:
        upper, _ = pt.select_ttbr(va, regs["TCR_EL1"])
    except pt.WalkError as e:
        raise RkvmError(str(e)) from None
    geo = _geometry(lambda: pt.stage1_geometry(regs["TCR_EL1"], upper))
    return Regime("el1", 1, regs, table_register="TTBR1_EL1" if upper else "TTBR0_EL1", geometry=geo,
                  mair=regs["MAIR_EL1"])


def translate(va: int, cpu: int | None = None, regime: str = "el1") -> Translation:
    """Walk `va` on vCPU `cpu` in the stage-1 regime regime_for() picks: a Translation record."""
    return translate_in(va, regime_for(va, cpu, regime))


def translate_in(va: int, regime: Regime) -> Translation:
    """`va` through `regime`'s tables (read physically), or VA = PA when the regime does not walk."""
    if regime.table_register is None:
        return _untranslated(va, regime)
    geo = regime.geometry
    ia = va & ((1 << geo.ia_bits) - 1) if regime.stage == 2 else va
    if regime.name == "el1":
        ia = pt.select_ttbr(va, regime.registers["TCR_EL1"])[1]
    with table_reader(geo.granule) as reader:
        w = pt.walk(ia, regime.registers[regime.table_register], geo, reader, regime.stage, regime.mair)
    note = None if regime.mmu_on else "stage 2 is off (HCR_EL2.VM = 0): IPA = PA"
    return Translation(va, regime, w, w.pa if w.ok else None, note, w.fault)


def _untranslated(va: int, regime: Regime) -> Translation:
    if regime.name == "el2" and va >> MAX_PA_BITS:
        return Translation(va, regime, None, None, regime.disabled,
                           f"{va:#x} is no address at EL2: as a physical address it is beyond any "
                           f"({MAX_PA_BITS} bits at most); a kernel VA is walked with --regime el1")
    note = regime.disabled + (", VA = PA" if regime.name == "el2" else
                              ": VA = PA" if regime.name == "el1" else "")
    return Translation(va, regime, None, va, note)


MAX_PA_BITS = 52   # the largest physical address size AArch64 defines (ID_AA64MMFR0_EL1.PARange 0b0110)


def init_sections_note(va: int) -> str | None:
    """Why a kernel-image VA inside __init_begin..__init_end does not translate after boot."""
    begin, end = t.symbol_address("__init_begin"), t.symbol_address("__init_end")
    if begin is None or end is None or not begin <= va < end:
        return None
    return ("this address is in the kernel's init sections (__init_begin..__init_end: .init.text, "
            ".init.data), which the kernel frees once boot is done (free_initmem()): unmapped on purpose")


def _geometry(make):
    try:
        return make()
    except pt.WalkError as e:
        raise RkvmError(str(e)) from None


def kernel_layout(cpu: int | None = None) -> KernelLayout:
    """The kernel's memory map for this boot, from kernel variables and TCR_EL1."""
    key = ("layout",)
    if key in STATE.stop_cache:
        return STATE.stop_cache[key]
    needed = {name: t.read_u64_symbol(name) for name in ("memstart_addr", "kimage_voffset", "high_memory")}
    text, end = t.symbol_address("_text"), t.symbol_address("_end")
    missing = [n for n, v in {**needed, "_text": text, "_end": end}.items() if v is None]
    if missing:
        raise RkvmError(f"kernel layout unknown: cannot read {', '.join(missing)} (vmlinux symbols loaded? "
                        "kernel booted past paging_init?)")
    ram = kernel_facts.ram_ranges()
    if not ram or needed["high_memory"] == 0:
        raise RkvmError("kernel layout unknown: the kernel has not set up its memory map yet")
    dram_end = max(e for _, e in ram)
    tcr = t.read_register("TCR_EL1", cpu)
    geo = pt.stage1_geometry(tcr, upper=True)
    try:
        page_size = gdb.lookup_type("struct page").sizeof   # not an expression: see module_symbols
    except gdb.error:
        page_size = 64
    module_ranges = []
    for name, size in (("module_direct_base", 128 << 20), ("module_plt_base", 2 << 30)):
        base = t.read_u64_symbol(name)
        if base:
            module_ranges.append((base, base + size))
    layout = KernelLayout(page_offset=page_offset_from(needed["high_memory"], dram_end, needed["memstart_addr"]),
                          phys_offset=needed["memstart_addr"], kimage_voffset=needed["kimage_voffset"],
                          kernel_start=text, kernel_end=end, va_bits_in_use=geo.ia_bits,
                          page_shift=geo.page_shift, struct_page_size=page_size, module_ranges=module_ranges)
    STATE.stop_cache[key] = layout
    return layout


def address_of(expr: str) -> int:
    """A number, or a symbol/expression GDB can evaluate to an address ('rkvm_stub_el1_sync', '&x').
    Kernel variables are read as the kernel sees them even when the selected CPU is at EL2."""
    text = expr.strip()
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        pass
    else:
        if not 0 <= value <= t.MASK64:
            raise RkvmError(f"{text} is not a 64-bit address")
        return value

    def evaluate() -> int:
        value = gdb.parse_and_eval(text)
        if value.type.strip_typedefs().code in (gdb.TYPE_CODE_FUNC, gdb.TYPE_CODE_ARRAY):
            value = value.address
        elif value.type.strip_typedefs().code not in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_INT):
            value = value.address
        return int(value.cast(gdb.lookup_type("unsigned long"))) & t.MASK64

    try:
        return t.evaluate_in_kernel_view(evaluate, text)
    except gdb.MemoryError as e:
        raise RkvmError(f"'{text}': {e}") from None
    except gdb.error as e:
        raise RkvmError(f"'{text}' is neither an address nor a symbol GDB knows ({e})") from None

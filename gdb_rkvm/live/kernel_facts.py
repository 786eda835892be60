"""Facts about the running kernel and lab that commands need: RAM, the hyp-stub's PA, rkvm stub pages."""

import gdb

from gdb_rkvm.model import stub_abi
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.qemu.profiles import memory_bytes
from gdb_rkvm.model.vbar_el2 import VectorLandmarks
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE

# QEMU virt: RAM starts at 1 GiB (hw/arm/virt.c memmap VIRT_MEM). Used only without kernel symbols.
VIRT_RAM_BASE = 0x40000000


def ram_ranges() -> list[tuple[int, int]]:
    """Physical RAM as [start, end) ranges: the kernel's memblock.memory, else QEMU virt's default layout."""
    key = ("ram",)
    if key in STATE.stop_cache:
        return STATE.stop_cache[key]
    def memblock() -> list[tuple[int, int]]:
        mem = gdb.parse_and_eval("memblock.memory")
        out = []
        for i in range(min(int(mem["cnt"]), 128)):
            r = mem["regions"][i]
            base, size = int(r["base"]), int(r["size"])
            if size:
                out.append((base, base + size))
        return out

    try:
        ranges = t.evaluate_in_kernel_view(memblock, "memblock.memory")
    except (gdb.error, RkvmError):
        ranges = []
    if not ranges and STATE.session is not None:
        argv = STATE.session.argv
        if "-m" in argv[:-1]:
            try:  # '2048' is MiB, '2G' GiB: QEMU's own units (profiles.memory_bytes)
                ranges = [(VIRT_RAM_BASE, VIRT_RAM_BASE + memory_bytes(argv[argv.index("-m") + 1]))]
            except RkvmError:
                ranges = []
    STATE.stop_cache[key] = ranges
    return ranges


def kimage_voffset() -> int | None:
    return t.read_u64_symbol("kimage_voffset")


def hyp_stub_pa() -> int | None:
    """PA of the kernel's __hyp_stub_vectors: a kernel-image symbol, so VA - kimage_voffset; before
    the kernel has set kimage_voffset (early boot), from where its Image is in RAM."""
    va, off = t.symbol_address("__hyp_stub_vectors"), kimage_voffset()
    if va is None:
        return None
    if not off:
        return _boot_pa("__hyp_stub_vectors")
    return (va - off) & t.MASK64


def _boot_pa(symbol: str) -> int | None:
    from gdb_rkvm.live import boot  # boot builds on this module
    try:
        return boot.pa_of(symbol)
    except (RkvmError, gdb.error):
        return None


def code_symbol(pc: int, el: int, marks: VectorLandmarks) -> str | None:
    """Name a CPU's PC: an EL2 PC is physical; an EL1 PC is virtual, except while the kernel still
    runs with its MMU off in early boot (a PA inside the Image)."""
    if el == 2:
        return el2_symbol(pc, marks)
    sym = t.symbol_at(pc)
    if sym is None and pc >> 48 == 0 and pc:
        from gdb_rkvm.live import boot
        try:
            sym = boot.symbol_of_pa(pc)
        except (RkvmError, gdb.error):
            sym = None
    return sym


def is_rkvm_stub(pa: int) -> bool:
    """Whether the page at `pa` carries the rkvm stub's magic at RKVM_OFF_MAGIC."""
    off = stub_abi.value("RKVM_OFF_MAGIC")
    try:
        data = t.read_physical(pa + off, 8)
    except RkvmError:
        return False
    return int.from_bytes(data, "little") == stub_abi.value("RKVM_STUB_MAGIC")


def landmarks(vbars: list[int]) -> VectorLandmarks:
    ram = ram_ranges()
    marks = VectorLandmarks(hyp_stub_pa=hyp_stub_pa(), ram=ram)
    for v in set(vbars):
        if (marks.in_ram(v) is not False) and v % 0x800 == 0 and is_rkvm_stub(v):
            marks.rkvm_stub_pas.add(v)
    return marks


def el2_symbol(pa: int, marks: VectorLandmarks) -> str | None:
    """Name an EL2 (physical) code address: GDB symbols at the PA (a loaded stub ELF), the rkvm stub
    by offset, or the kernel image through kimage_voffset (the hyp-stub lives there)."""
    from gdb_rkvm.model.stub_symbols import name_offset
    direct = t.symbol_at(pa)
    if direct:
        return direct
    for base in marks.rkvm_stub_pas:
        if base <= pa < base + stub_abi.value("RKVM_STUB_SIZE"):
            return name_offset(pa - base)
    off = kimage_voffset()
    if off and any(s <= pa < e for s, e in marks.ram):
        return t.symbol_at((pa + off) & t.MASK64)
    if not off:   # early boot: the kernel image by where it was loaded
        from gdb_rkvm.live import boot
        try:
            return boot.symbol_of_pa(pa)
        except (RkvmError, gdb.error):
            return None
    return None

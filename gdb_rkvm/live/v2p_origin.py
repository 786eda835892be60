"""Whether a physical address EL2 was handed (VBAR_EL2, VTTBR_EL2.BADDR) is what virt_to_phys() gives for
a module or vmalloc VA: the classic mistake of taking the linear map's formula to memory that is mapped
page by page."""

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, translation
from gdb_rkvm.model.world import VbarOrigin


def virt_to_phys_origin(pa: int, marks=None, require_symbol: bool = True) -> VbarOrigin | None:
    """If `pa` is what virt_to_phys() gives for a mapped module or vmalloc VA (and is not a known vector
    table), that VA and its real PA.

    Any PA is `VA - kimage_voffset` for some VA; it only means something when that VA is mapped
    elsewhere and names module code or a vmalloc allocation. A vmalloc VA without a symbol is taken
    only when `require_symbol` is False: the caller knows `pa` is wrong already (not RAM), so a
    coincidence cannot make a healthy address look like the mistake.
    """
    off = kernel_facts.kimage_voffset()
    if not off or not pa:
        return None
    marks = marks or kernel_facts.landmarks([pa])
    if pa == marks.hyp_stub_pa or pa in marks.rkvm_stub_pas:
        return None
    va = (pa + off) & t.MASK64
    try:
        layout = translation.kernel_layout()
    except RkvmError:
        return None
    region = layout.region(va)
    if region not in ("modules", "vmalloc") or layout.virt_to_phys(va) != pa:
        return None
    try:
        real = translation.translate(va).pa
    except RkvmError:
        real = None
    symbol = t.symbol_at(va)
    if real is None or real == pa or (region != "modules" and symbol is None and require_symbol):
        return None
    return VbarOrigin(va, region, symbol, real)

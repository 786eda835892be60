"""A guest's address space as a whole: its stage 1 tables read at IPAs (through stage 2), and its
stage 1 ranges split where stage 2 maps them differently, so each piece says VA, IPA and PA.

Stage 2 MemAttr[3:0] (descriptor bits [5:2], with HCR_EL2.FWB = 0) and S2AP/XN as names and rwx
records, from the attributes pagetable.leaf_attributes() gives a stage 2 leaf.
"""

import bisect
from dataclasses import dataclass

from . import pagetable as pt
from .stage2 import Permissions, stage2_permissions

_S2AP_BITS = {"none": 0, "RO": 1, "WO": 2, "RW": 3}
_DEVICE = {0: "Device-nGnRnE", 1: "Device-nGnRE", 2: "Device-nGRE", 3: "Device-GRE"}
_CACHE = {1: "Non-cacheable", 2: "Write-Through", 3: "Write-Back"}


def memattr_name(memattr: int) -> str:
    """Stage 2 MemAttr[3:0] (FWB = 0): [3:2] 0b00 is Device ([1:0] the kind), else Normal with
    [3:2] the outer and [1:0] the inner cacheability (0b00 inner is reserved)."""
    outer, inner = (memattr >> 2) & 3, memattr & 3
    if outer == 0:
        return _DEVICE[inner]
    if inner == 0:
        return f"reserved ({memattr:#06b})"
    if outer == inner:
        return f"Normal {_CACHE[outer]}"
    return f"Normal, Outer {_CACHE[outer]}, Inner {_CACHE[inner]}"


def stage2_perms(attrs: dict, xnx: bool = True) -> Permissions:
    """The rwx a stage 2 leaf allows, from its decoded S2AP and XN attributes."""
    raw = (_S2AP_BITS.get(attrs.get("S2AP"), 0) << 6) | (attrs.get("XN", 0) << 53)
    return stage2_permissions(raw, xnx)


def stage1_perms(attrs: dict) -> Permissions:
    el1, el0 = pt.permissions(attrs).split()
    return Permissions(el1, el0)


class IpaReader:
    """read(ipa, size) for pagetable.TableReader: each stage 2 granule of the range translated by a
    stage 2 walk (its tables cached in `s2_reader`), then read physically. A range stage 2 does not
    map raises LookupError naming the IPA and the fault."""

    def __init__(self, read_phys, vttbr: int, s2_geo: pt.Geometry, s2_reader: pt.TableReader):
        self.read_phys, self.vttbr, self.geo, self.s2 = read_phys, vttbr, s2_geo, s2_reader

    def pa_of(self, ipa: int) -> int:
        w = pt.walk(ipa, self.vttbr, self.geo, self.s2, 2)
        if not w.ok:
            raise LookupError(f"IPA {ipa:#x} has no stage 2 mapping ({w.fault})")
        return w.pa

    def read(self, ipa: int, size: int) -> bytes:
        out, step = b"", self.geo.granule
        end = ipa + size
        while ipa < end:   # at most size / granule pieces: a table is at most one 64K granule
            chunk = min(end, (ipa | (step - 1)) + 1) - ipa
            out += bytes(self.read_phys(self.pa_of(ipa), chunk))
            ipa += chunk
        return out


@dataclass(frozen=True)
class GuestRange:
    """A piece of a guest stage 1 mapping that stage 2 maps one way (or not at all: pa None)."""

    va: int
    size: int
    ipa: int
    pa: int | None
    s1_attrs: dict
    s2_attrs: dict | None

    @property
    def perms(self) -> Permissions | None:
        """Both stages' permissions intersected; None where stage 2 maps nothing."""
        if self.s2_attrs is None:
            return None
        return stage1_perms(self.s1_attrs) & stage2_perms(self.s2_attrs)

    def to_dict(self) -> dict:
        return {"va": self.va, "end": self.va + self.size, "size": self.size, "ipa": self.ipa, "pa": self.pa,
                "stage1_perms": str(stage1_perms(self.s1_attrs)),
                "stage2_perms": str(stage2_perms(self.s2_attrs)) if self.s2_attrs is not None else None,
                "perms": str(self.perms) if self.perms else None, "stage1_attributes": self.s1_attrs,
                "stage2_attributes": self.s2_attrs}


def combine(s1: list[pt.Mapping], s2: list[pt.Mapping], max_ranges: int = 65536) -> tuple[list[GuestRange], bool]:
    """Each stage 1 range (VA -> IPA) cut where the stage 2 ranges (IPA -> PA) begin and end.
    Returns (pieces, truncated): at most `max_ranges` pieces (a guest chooses how many there are)."""
    s2 = sorted(s2, key=lambda m: m.va)
    starts = [m.va for m in s2]
    out: list[GuestRange] = []
    for m in s1:
        ipa, end = m.pa, m.pa + m.size
        i = max(0, bisect.bisect_right(starts, ipa) - 1)
        while ipa < end:
            if len(out) >= max_ranges:
                return out, True
            while i < len(s2) and s2[i].va + s2[i].size <= ipa:
                i += 1
            here = s2[i] if i < len(s2) and s2[i].va <= ipa else None
            if here is not None:
                stop = min(end, here.va + here.size)
                pa, attrs = here.pa + (ipa - here.va), here.attrs
            else:
                stop = min(end, s2[i].va) if i < len(s2) else end
                pa, attrs = None, None
            out.append(GuestRange(m.va + (ipa - m.pa), stop - ipa, ipa, pa, m.attrs, attrs))
            ipa = stop
    return out, False

"""MAIR_ELx: eight 8-bit memory attributes, indexed by a descriptor's AttrIndx."""

from gdb_rkvm.arch.fields import Decoded, FieldValue, MASK64

_DEVICE = {0b00: "Device-nGnRnE", 0b01: "Device-nGnRE", 0b10: "Device-nGRE", 0b11: "Device-GRE"}


def _half(h: int) -> str:
    if h == 0b0100:
        return "Non-cacheable"
    kind = {0b00: "Write-Through transient", 0b01: "Write-Back transient",
            0b10: "Write-Through non-transient", 0b11: "Write-Back non-transient"}[h >> 2]
    alloc = {0: "", 1: " W-alloc", 2: " R-alloc", 3: " RW-alloc"}[h & 3]
    if h >> 2 in (0b00, 0b01) and h & 3 == 0:
        return f"reserved ({h:#06b})"
    return kind + alloc


def attr_name(attr: int) -> str:
    """What one 8-bit MAIR attribute means."""
    attr &= 0xFF
    if attr >> 4 == 0:
        if attr & 0b11:
            return f"reserved device attribute {attr:#04x}"
        return _DEVICE[(attr >> 2) & 3]
    if attr == 0xF0:
        return "Normal, Inner/Outer Write-Back RW-alloc, Tagged (MTE)"
    outer, inner = attr >> 4, attr & 0xF
    if inner == 0:
        return f"reserved normal attribute {attr:#04x}"
    if outer == inner:
        return f"Normal {_half(outer)}"
    return f"Normal, Outer {_half(outer)}, Inner {_half(inner)}"


def attribute(mair: int, index: int) -> int:
    return (mair >> (8 * index)) & 0xFF


def decode(value: int, register: str = "MAIR_EL1") -> Decoded:
    value &= MASK64
    fields = [FieldValue(f"Attr{n}", f"[{8 * n + 7}:{8 * n}]", attribute(value, n), attr_name(attribute(value, n)))
              for n in range(8)]
    dec = Decoded(register, value, fields, ", ".join(f"{n}:{attribute(value, n):#04x}" for n in range(8)))
    dec.explain = [f"{register} maps a page descriptor's AttrIndx (0-7) to a memory type."]
    dec.explain += [f"AttrIndx {n}: {f.meaning}." for n, f in enumerate(fields) if f.value]
    return dec

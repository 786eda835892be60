"""The AArch64 exception vector table: 16 slots of 0x80 bytes at VBAR_ELx (2 KiB aligned)."""

SLOT_SIZE = 0x80
TABLE_SIZE = 0x800
_GROUPS = ["Current EL with SP0", "Current EL with SPx", "Lower EL using AArch64", "Lower EL using AArch32"]
_KINDS = ["Synchronous", "IRQ", "FIQ", "SError"]


def slots() -> list[tuple[int, str]]:
    """(offset, name) of the 16 vectors, in table order."""
    return [(g * 0x200 + k * SLOT_SIZE, f"{_GROUPS[g]}, {_KINDS[k]}") for g in range(4) for k in range(4)]


_SHORT_GROUPS = ["cur-sp0", "cur-spx", "lower64", "lower32"]
_SHORT_KINDS = ["sync", "irq", "fiq", "serror"]


def _slot(offset: int) -> tuple[int, int] | None:
    """(group, kind) of the slot containing `offset` from VBAR: four groups of 0x200 bytes (where the
    exception came from), four slots of 0x80 in each (its kind); None outside the 2 KiB table."""
    if not 0 <= offset < TABLE_SIZE:
        return None
    return offset // 0x200, (offset % 0x200) // SLOT_SIZE


def slot_name(offset: int) -> str:
    """Name of the slot containing `offset` from VBAR, or 'not in the vector table'."""
    slot = _slot(offset)
    return "not in the vector table" if slot is None else f"{_GROUPS[slot[0]]}, {_KINDS[slot[1]]}"


def short_slot_name(offset: int) -> str | None:
    """'lower64 sync' for VBAR + 0x400 and so on; None outside the table."""
    slot = _slot(offset)
    return None if slot is None else f"{_SHORT_GROUPS[slot[0]]} {_SHORT_KINDS[slot[1]]}"


LOWER_A64_SYNC = 0x400   # where an HVC from EL1 (AArch64) lands at EL2
CURRENT_SPX_SYNC = 0x200  # where an exception taken at EL2 itself lands (EL2h)


def contains(vbar: int, addr: int) -> bool:
    """Whether `addr` lies in the 2 KiB vector table at `vbar`."""
    return vbar <= addr < vbar + TABLE_SIZE


def is_aligned(vbar: int) -> bool:
    """VBAR_ELx bits [10:0] are RES0: the table must be 2 KiB aligned."""
    return vbar & (TABLE_SIZE - 1) == 0

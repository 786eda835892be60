"""Which symbols are worth printing next to an address. Some ELF symbols name no code or data: the
kernel's ELF note markers (`_note_19`, from the ELFNOTE macros, at a note's offset, so often at 0),
section symbols and the AArch64 mapping symbols (`$x`, `$d`: "code/data starts here"). Beside a 0
(VBAR_EL1 of a guest that set none, an ELR never written) such a name reads as a real place."""

import re

_MARKER = re.compile(r"_note_\d+|\$[xdt](\..*)?|\..*")


def worth_showing(addr: int, name: str) -> bool:
    """False for address 0 (nothing a CPU runs or a pointer meant there) and for marker names;
    `name` is the bare symbol, without '+offset'."""
    return addr != 0 and not _MARKER.fullmatch(name)

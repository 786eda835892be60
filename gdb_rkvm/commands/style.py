"""GDB's own styling on rkvm's output: addresses, symbols and verdicts look the way GDB shows them.

Pure text work (no gdb import): `StylePalette` holds the escape sequences GDB's `style` settings
name, and `paint()` applies them. The GDB side builds the palette from `show style ...` and passes
an empty one when styling is off (`set style enabled off`, `set rkvm style off`, not a terminal).
"""

import re
from dataclasses import dataclass

COLOURS = {"black": 30, "red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36,
           "white": 37}
INTENSITY = {"bold": 1, "dim": 2}
RESET = "\x1b[0m"

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{5,}\b")
_SYMBOL = re.compile(r"<[A-Za-z_.$][\w.$]*(?:\+0x[0-9a-fA-F]+)?>")
# Words that carry a verdict in rkvm's findings (what is wrong, where the user should look).
_VERDICT = re.compile(r"\b(not RAM|virt_to_phys\(\)[^;,.]*|disagree\w*|FAULT|fault(?:ed)?|wrong|unset|"
                      r"parked|panic|stuck|not set)\b")


@dataclass(frozen=True)
class StylePalette:
    """Escape sequences per kind of text; an empty string leaves that kind plain."""
    address: str = ""
    symbol: str = ""
    verdict: str = ""
    title: str = ""

    @property
    def enabled(self) -> bool:
        return any((self.address, self.symbol, self.verdict, self.title))


def sgr(foreground: str, intensity: str = "normal") -> str:
    """The escape sequence for one of GDB's style settings ('blue', 'bold'); '' for 'none'."""
    codes = []
    if intensity in INTENSITY:
        codes.append(INTENSITY[intensity])
    if foreground in COLOURS:
        codes.append(COLOURS[foreground])
    return f"\x1b[{';'.join(map(str, codes))}m" if codes else ""


def paint(text: str, palette: StylePalette) -> str:
    """`text` with addresses, <symbols> and verdict words styled. Spans never nest: a symbol's
    offset is part of the symbol, not an address."""
    if not palette.enabled:
        return text
    spans = []
    for kind, pattern in (("symbol", _SYMBOL), ("address", _ADDRESS), ("verdict", _VERDICT)):
        code = getattr(palette, kind)
        if not code:
            continue
        for m in pattern.finditer(text):
            if not any(s < m.end() and m.start() < e for s, e, _ in spans):
                spans.append((m.start(), m.end(), code))
    out, pos = [], 0
    for start, end, code in sorted(spans):
        out += [text[pos:start], code, text[start:end], RESET]
        pos = end
    out.append(text[pos:])
    return "".join(out)

"""Bit fields of system registers, and a generic decoder over them."""

from dataclasses import dataclass, field

MASK64 = (1 << 64) - 1


def bits(value: int, hi: int, lo: int) -> int:
    """value[hi:lo] (inclusive), as the Arm ARM writes it."""
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


def bit(value: int, n: int) -> int:
    return (value >> n) & 1


@dataclass(frozen=True)
class Field:
    """A named bit range, with what its values mean (if they are an enumeration) and a doc line."""

    name: str
    hi: int
    lo: int
    doc: str = ""
    values: dict = field(default_factory=dict)   # int -> meaning

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    def span(self) -> str:
        return f"[{self.hi}]" if self.hi == self.lo else f"[{self.hi}:{self.lo}]"


def F(name, hi, lo=None, doc="", values=None) -> Field:  # noqa: N802  (short constructor for tables)
    return Field(name, hi, hi if lo is None else lo, doc, values or {})


@dataclass
class FieldValue:
    name: str
    span: str
    value: int
    meaning: str
    doc: str = ""

    def to_dict(self):
        return {"name": self.name, "bits": self.span, "value": self.value, "meaning": self.meaning}


@dataclass
class Decoded:
    """A register value taken apart: its fields, a one-line summary, and sentences for a learner."""

    register: str
    value: int
    fields: list = field(default_factory=list)
    summary: str = ""
    explain: list = field(default_factory=list)

    def field(self, name: str) -> FieldValue | None:
        return next((f for f in self.fields if f.name == name), None)

    def to_dict(self):
        return {"register": self.register, "value": self.value, "hex": f"{self.value:#x}",
                "summary": self.summary, "fields": [f.to_dict() for f in self.fields],
                "explain": self.explain}


def decode_fields(value: int, table: list[Field], show_zero_flags: bool = False) -> list[FieldValue]:
    """Every field of `table` in `value`. Single-bit flags that are 0 are left out unless asked."""
    out = []
    for f in table:
        v = bits(value, f.hi, f.lo)
        if f.width == 1 and not f.values and v == 0 and not show_zero_flags:
            continue
        meaning = f.values.get(v, "") if f.values else ("set" if f.width == 1 and v else "")
        if f.values and v not in f.values:
            meaning = f"reserved/unknown value {v:#x}"
        out.append(FieldValue(f.name, f.span(), v, meaning, f.doc))
    return out


def set_flags(value: int, table: list[Field]) -> list[str]:
    """Names of the single-bit fields that are 1."""
    return [f.name for f in table if f.width == 1 and bits(value, f.hi, f.lo)]

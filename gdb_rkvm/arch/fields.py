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
    reset: int | None = None                     # the Arm ARM's reset value, where it defines one
    # an address field: (what it is, shift) - the address is the field's value << shift (VTTBR_EL2.BADDR
    # holds address bits [47:1] in bits [47:1]: shift 1; HPFAR_EL2.FIPA IPA bits [51:12] in [43:4]: 12)
    address: tuple[str, int] | None = None

    def address_of(self, v: int) -> str:
        """'PA 0x408e0000' for an address field's value `v`, else ''."""
        return f"{self.address[0]} {v << self.address[1]:#x}" if self.address else ""

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    def span(self) -> str:
        return f"[{self.hi}]" if self.hi == self.lo else f"[{self.hi}:{self.lo}]"


def F(name, hi, lo=None, doc="", values=None, reset=None, address=None) -> Field:  # noqa: N802  (short constructor)
    """A field. `values` names each value: a field with values is one the register is known for and
    is always shown, 0 included (SCTLR_EL2.M = 0 says EL2's MMU is off). `address`: see Field."""
    return Field(name, hi, hi if lo is None else lo, doc, values or {}, reset, address)


@dataclass
class FieldValue:
    name: str
    span: str
    value: int
    meaning: str
    doc: str = ""
    reset: int | None = None

    def to_dict(self):
        d = {"name": self.name, "bits": self.span, "value": self.value, "meaning": self.meaning}
        if self.reset is not None:
            d["reset"] = self.reset
        return d


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
    """The fields of `table` in `value`: every one with show_zero_flags; otherwise single-bit flags
    that are 0 are left out, unless the field is a known one (it has `values`) or its reset value
    is 1."""
    out = []
    for f in table:
        v = bits(value, f.hi, f.lo)
        shown = show_zero_flags or f.values or v or (f.reset is not None and v != f.reset)
        if f.width == 1 and not shown:
            continue
        meaning = f.values.get(v, "") if f.values else ("set" if f.width == 1 and v else f.address_of(v))
        if f.values and v not in f.values:
            meaning = f"reserved/unknown value {v:#x}"
        out.append(FieldValue(f.name, f.span(), v, meaning, f.doc, f.reset))
    return out


def set_flags(value: int, table: list[Field]) -> list[str]:
    """Names of the single-bit fields that are 1."""
    return [f.name for f in table if f.width == 1 and bits(value, f.hi, f.lo)]

"""Read Linux's arch/arm64/tools/sysreg (the kernel's own machine-readable register descriptions,
generated from the Arm ARM's XML) to check gdb-rkvm's catalogue against it."""

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gdb_rkvm.paths import build_dir

MEMBER = "arch/arm64/tools/sysreg"
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")


@dataclass
class KField:
    name: str
    hi: int
    lo: int
    values: dict = field(default_factory=dict)   # int -> kernel's name (NI, IMP, AARCH32...)


@dataclass
class KReg:
    name: str
    encoding: tuple
    fields: dict = field(default_factory=dict)


def sysreg_text() -> str:
    """The file from the lab's extracted kernel source, else straight from Debian's tarball."""
    extracted = build_dir() / "src/linux-source-6.12" / MEMBER
    if extracted.is_file():
        return extracted.read_text()
    assert TARBALL.is_file(), f"neither {extracted} nor {TARBALL}: run 'make setup'"
    out = subprocess.run(["tar", "-xJOf", str(TARBALL), f"linux-source-6.12/{MEMBER}"], capture_output=True,
                         check=True, timeout=300)
    return out.stdout.decode()


def _span(text: str) -> tuple[int, int]:
    hi, _, lo = text.partition(":")
    return int(hi), int(lo or hi)


def parse(text: str) -> dict[str, KReg]:
    """Registers by name, with their encodings and named fields (SysregFields blocks expanded)."""
    regs: dict[str, KReg] = {}
    shared: dict[str, dict] = {}
    current, fields, enum = None, None, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        kind = words[0]
        if kind == "Sysreg":
            current = KReg(words[1], tuple(int(x) for x in words[2:7]))
            fields = current.fields
        elif kind == "SysregFields":
            current, fields = words[1], shared.setdefault(words[1], {})
        elif kind in ("EndSysreg", "EndSysregFields"):
            if isinstance(current, KReg):
                regs[current.name] = current
            current, fields = None, None
        elif kind == "Fields" and isinstance(current, KReg):
            fields.update(shared.get(words[1], {}))
        elif kind in ("Field", "Enum", "UnsignedEnum", "SignedEnum") and fields is not None:
            hi, lo = _span(words[1])
            f = KField(words[2], hi, lo)
            fields[f.name] = f
            enum = f if kind != "Field" else None
        elif kind == "EndEnum":
            enum = None
        elif enum is not None and re.fullmatch(r"0b[01]+|0x[0-9a-fA-F]+|\d+", kind):
            enum.values[int(kind, 0)] = words[1] if len(words) > 1 else ""
    return regs

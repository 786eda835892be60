"""AArch64 disassembly with capstone, plus the facts a debugger wants about one instruction."""

from dataclasses import dataclass
from functools import lru_cache


@dataclass
class Insn:
    address: int
    size: int
    mnemonic: str
    op_str: str
    raw: bytes

    def text(self) -> str:
        return f"{self.mnemonic} {self.op_str}".strip()


@lru_cache(maxsize=1)
def _engine():
    import capstone   # here, not at import: GDB's start does not pay for it (some 20 ms)
    arch = getattr(capstone, "CS_ARCH_ARM64", None)
    if arch is None:  # capstone 6 renamed it
        arch = capstone.CS_ARCH_AARCH64
    return capstone.Cs(arch, capstone.CS_MODE_ARM)


def disassemble(code: bytes, address: int, count: int | None = None) -> list[Insn]:
    """Decode up to `count` instructions (every 4 bytes); undecodable words show as .inst."""
    out = []
    for off in range(0, len(code) - len(code) % 4, 4):
        if count is not None and len(out) >= count:
            break
        word = code[off:off + 4]
        decoded = list(_engine().disasm(word, address + off, 1))
        if decoded:
            i = decoded[0]
            out.append(Insn(address + off, 4, i.mnemonic, i.op_str, word))
        else:
            out.append(Insn(address + off, 4, ".inst", f"{int.from_bytes(word, 'little'):#010x}", word))
    return out


def system_register_operand(insn: Insn) -> str | None:
    """The system register an MRS (second operand) or MSR (first operand) names, upper-cased."""
    if insn.mnemonic not in ("mrs", "msr"):
        return None
    ops = [o.strip() for o in insn.op_str.split(",")]
    if len(ops) < 2:
        return None
    return (ops[1] if insn.mnemonic == "mrs" else ops[0]).upper()


def is_exception_return(insn: Insn) -> bool:
    return insn.mnemonic in ("eret", "eretaa", "eretab")


def is_exception_call(insn: Insn) -> bool:
    return insn.mnemonic in ("hvc", "svc", "smc")


BRANCH_IMMEDIATE = ("b", "bl", "cbz", "cbnz", "tbz", "tbnz")


def branch_target(insn: Insn) -> int | None:
    """The target of a direct branch (B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ: the last operand, an
    immediate that capstone has already made absolute), else None."""
    if insn.mnemonic not in BRANCH_IMMEDIATE and not insn.mnemonic.startswith("b."):
        return None
    last = insn.op_str.split(",")[-1].strip()
    if not last.startswith("#"):
        return None
    try:
        return int(last[1:], 0)
    except ValueError:
        return None


def branch_register(insn: Insn) -> str | None:
    """The register an indirect branch jumps through: BR Xn, BLR Xn, RET {Xn} (x30 by default)."""
    if insn.mnemonic in ("br", "blr"):
        return insn.op_str.strip() or None
    if insn.mnemonic == "ret":
        return insn.op_str.strip() or "x30"
    return None


def is_branch(insn: Insn) -> bool:
    return branch_target(insn) is not None or branch_register(insn) is not None

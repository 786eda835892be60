"""SPSR_ELx / CPSR: the saved (or current) PSTATE, and the EL and stack it selects.

AArch64 SPSR: N Z C V [31:28], TCO [25], DIT [24], UAO [23], PAN [22], SS [21], IL [20],
ALLINT [13], SSBS [12], BTYPE [11:10], D A I F [9:6], M[4] (0 = AArch64), M[3:0] = EL and SP.
"""

from gdb_rkvm.arch.fields import Decoded, FieldValue, MASK64, bits

AARCH64_MODES = {0b0000: "EL0t", 0b0100: "EL1t", 0b0101: "EL1h", 0b1000: "EL2t", 0b1001: "EL2h",
                 0b1100: "EL3t", 0b1101: "EL3h"}
AARCH32_MODES = {0x10: "usr", 0x11: "fiq", 0x12: "irq", 0x13: "svc", 0x16: "mon", 0x17: "abt",
                 0x1A: "hyp", 0x1B: "und", 0x1F: "sys"}
_FLAGS64 = [("N", 31), ("Z", 30), ("C", 29), ("V", 28), ("TCO", 25), ("DIT", 24), ("UAO", 23), ("PAN", 22),
            ("SS", 21), ("IL", 20), ("ALLINT", 13), ("SSBS", 12), ("D", 9), ("A", 8), ("I", 7), ("F", 6)]
_FLAGS32 = [("N", 31), ("Z", 30), ("C", 29), ("V", 28), ("Q", 27), ("DIT", 24), ("SSBS", 23), ("PAN", 22),
            ("SS", 21), ("IL", 20), ("E", 9), ("A", 8), ("I", 7), ("F", 6), ("T", 5)]


def mode_name(value: int) -> str:
    """'EL1h', 'EL2h', 'svc (AArch32)', ... or 'invalid mode 0b...'."""
    if bits(value, 4, 4):
        m = bits(value, 4, 0)
        name = AARCH32_MODES.get(m)
        return f"{name} (AArch32)" if name else f"invalid AArch32 mode {m:#x}"
    m = bits(value, 3, 0)
    return AARCH64_MODES.get(m, f"invalid mode {m:#06b}")


def exception_level(value: int) -> int | None:
    """The EL an AArch64 PSTATE/SPSR value selects (M[3:2]), None for AArch32 or invalid modes."""
    if bits(value, 4, 4) or bits(value, 3, 0) not in AARCH64_MODES:
        return None
    return bits(value, 3, 2)


def uses_sp_elx(value: int) -> bool:
    """True for ELxh (SP_ELx), False for ELxt (SP_EL0)."""
    return bool(bits(value, 0, 0))


def current_el_from_cpsr(cpsr: int) -> int:
    """GDB's $cpsr on QEMU carries PSTATE.EL in bits [3:2] (there is no $CurrentEL register)."""
    return bits(cpsr, 3, 2)


def currentel_value(cpsr: int) -> int:
    """CurrentEL as MRS reads it: PSTATE.EL in bits [3:2], every other bit RES0."""
    return current_el_from_cpsr(cpsr) << 2


def decode(value: int, register: str = "SPSR_EL2") -> Decoded:
    """SPSR/CPSR taken apart: mode, interrupt masks, flags."""
    value &= MASK64
    aarch32 = bool(bits(value, 4, 4))
    flags = _FLAGS32 if aarch32 else _FLAGS64
    fields = [FieldValue(n, f"[{b}]", 1, "set") for n, b in flags if bits(value, b, b)]
    mode = mode_name(value)
    fields.append(FieldValue("M", "[4:0]", bits(value, 4, 0), mode))
    if not aarch32 and bits(value, 11, 10):
        fields.append(FieldValue("BTYPE", "[11:10]", bits(value, 11, 10), ""))
    masked = "".join(n for n, b in (("D", 9), ("A", 8), ("I", 7), ("F", 6)) if bits(value, b, b))
    summary = f"{mode}, DAIF masked: {masked or 'none'}"
    dec = Decoded(register, value, fields, summary)
    if register.startswith("SPSR"):
        el = register[-1]
        masks = f"interrupts masked: {masked}" if masked else "nothing masked"
        dec.explain = [f"{register} is PSTATE as it was when the last exception was taken to EL{el}: "
                       f"ERET will return to {mode} with {masks}."]
    else:
        dec.explain = [f"PSTATE now: running in {mode}."]
    return dec

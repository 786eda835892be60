"""ESR_ELx, the Exception Syndrome Register: why the last exception to an EL was taken.

ESR_ELx: EC [31:26] exception class, IL [25] instruction length (1 = 32-bit), ISS [24:0]
instruction-specific syndrome, ISS2 [36:32]. EC values and ISS layouts follow the Arm ARM's
"ESR_EL2, Exception Syndrome Register (EL2)". decode() never raises: unknown encodings say so.
"""

from gdb_rkvm.arch.fields import Decoded, FieldValue, MASK64, bits
from gdb_rkvm.arch.sysregs import encoding_name

# EC -> (short name, description)
EXCEPTION_CLASSES = {
    0x00: ("UNKNOWN", "Unknown reason (e.g. an UNDEFINED instruction)"),
    0x01: ("WFx", "Trapped WFI, WFE, WFIT or WFET"),
    0x03: ("CP15_32", "Trapped MCR or MRC access (coproc 0b1111), AArch32"),
    0x04: ("CP15_64", "Trapped MCRR or MRRC access (coproc 0b1111), AArch32"),
    0x05: ("CP14_MR", "Trapped MCR or MRC access (coproc 0b1110), AArch32"),
    0x06: ("CP14_LS", "Trapped LDC or STC access, AArch32"),
    0x07: ("FP_ASIMD", "Access to SME, SVE, Advanced SIMD or floating-point trapped (CPACR/CPTR)"),
    0x08: ("CP10_ID", "Trapped VMRS access (ID group), AArch32"),
    0x09: ("PAC", "Trapped pointer authentication instruction (HCR_EL2.API / SCR_EL3.API)"),
    0x0A: ("LS64", "Trapped LD64B, ST64B, ST64BV or ST64BV0"),
    0x0C: ("CP14_64", "Trapped MRRC access (coproc 0b1110), AArch32"),
    0x0D: ("BTI", "Branch Target Exception"),
    0x0E: ("ILL", "Illegal Execution state (PSTATE.IL was set)"),
    0x11: ("SVC32", "SVC instruction, AArch32"),
    0x12: ("HVC32", "HVC instruction, AArch32"),
    0x13: ("SMC32", "SMC instruction, AArch32"),
    0x15: ("SVC64", "SVC instruction, AArch64"),
    0x16: ("HVC64", "HVC instruction, AArch64"),
    0x17: ("SMC64", "SMC instruction, AArch64"),
    0x18: ("SYS64", "Trapped MSR, MRS or System instruction, AArch64"),
    0x19: ("SVE", "Access to SVE functionality trapped"),
    0x1A: ("ERET", "Trapped ERET, ERETAA or ERETAB (nested virtualization)"),
    0x1B: ("TSTART", "Exception from TSTART (transactional memory)"),
    0x1C: ("FPAC", "Pointer authentication failure"),
    0x1D: ("SME", "Access to SME functionality trapped"),
    0x1E: ("GPC", "Granule Protection Check exception"),
    0x1F: ("IMP_DEF", "IMPLEMENTATION DEFINED exception to EL3"),
    0x20: ("IABT_LOW", "Instruction Abort from a lower Exception level"),
    0x21: ("IABT_CUR", "Instruction Abort taken without a change in Exception level"),
    0x22: ("PC_ALIGN", "PC alignment fault"),
    0x24: ("DABT_LOW", "Data Abort from a lower Exception level"),
    0x25: ("DABT_CUR", "Data Abort taken without a change in Exception level"),
    0x26: ("SP_ALIGN", "SP alignment fault"),
    0x27: ("MOPS", "Memory Operation (CPY*/SET*) exception"),
    0x28: ("FP_EXC32", "Trapped floating-point exception, AArch32"),
    0x2C: ("FP_EXC64", "Trapped floating-point exception, AArch64"),
    0x2D: ("GCS", "Guarded Control Stack exception"),
    0x2F: ("SERROR", "SError exception"),
    0x30: ("BREAKPT_LOW", "Breakpoint exception from a lower Exception level"),
    0x31: ("BREAKPT_CUR", "Breakpoint exception taken without a change in Exception level"),
    0x32: ("SOFTSTP_LOW", "Software Step exception from a lower Exception level"),
    0x33: ("SOFTSTP_CUR", "Software Step exception taken without a change in Exception level"),
    0x34: ("WATCHPT_LOW", "Watchpoint exception from a lower Exception level"),
    0x35: ("WATCHPT_CUR", "Watchpoint exception taken without a change in Exception level"),
    0x38: ("BKPT32", "BKPT instruction, AArch32"),
    0x3A: ("VECTOR32", "Vector Catch exception, AArch32"),
    0x3C: ("BRK64", "BRK instruction, AArch64"),
    0x3D: ("PROFILING", "Profiling exception (PMU event-based)"),
}

# DFSC/IFSC (ISS[5:0] of aborts) -> description. "level N" = the translation table level.
FAULT_STATUS = {
    0b000000: "Address size fault, level 0 of translation or translation table base register",
    0b000001: "Address size fault, level 1",
    0b000010: "Address size fault, level 2",
    0b000011: "Address size fault, level 3",
    0b000100: "Translation fault, level 0",
    0b000101: "Translation fault, level 1",
    0b000110: "Translation fault, level 2",
    0b000111: "Translation fault, level 3",
    0b001000: "Access flag fault, level 0",
    0b001001: "Access flag fault, level 1",
    0b001010: "Access flag fault, level 2",
    0b001011: "Access flag fault, level 3",
    0b001100: "Permission fault, level 0",
    0b001101: "Permission fault, level 1",
    0b001110: "Permission fault, level 2",
    0b001111: "Permission fault, level 3",
    0b010000: "Synchronous External abort, not on translation table walk",
    0b010001: "Synchronous Tag Check Fault",
    0b010011: "Synchronous External abort on translation table walk, level -1",
    0b010100: "Synchronous External abort on translation table walk, level 0",
    0b010101: "Synchronous External abort on translation table walk, level 1",
    0b010110: "Synchronous External abort on translation table walk, level 2",
    0b010111: "Synchronous External abort on translation table walk, level 3",
    0b011000: "Synchronous parity or ECC error on memory access, not on translation table walk",
    0b011011: "Synchronous parity or ECC error on translation table walk, level -1",
    0b011100: "Synchronous parity or ECC error on translation table walk, level 0",
    0b011101: "Synchronous parity or ECC error on translation table walk, level 1",
    0b011110: "Synchronous parity or ECC error on translation table walk, level 2",
    0b011111: "Synchronous parity or ECC error on translation table walk, level 3",
    0b100001: "Alignment fault",
    0b100011: "Granule Protection Fault on translation table walk, level -1",
    0b100100: "Granule Protection Fault on translation table walk, level 0",
    0b100101: "Granule Protection Fault on translation table walk, level 1",
    0b100110: "Granule Protection Fault on translation table walk, level 2",
    0b100111: "Granule Protection Fault on translation table walk, level 3",
    0b101000: "Granule Protection Fault, not on translation table walk",
    0b101001: "Address size fault, level -1",
    0b101011: "Translation fault, level -1",
    0b110000: "TLB conflict abort",
    0b110001: "Unsupported atomic hardware update fault",
    0b110100: "IMPLEMENTATION DEFINED fault (Lockdown)",
    0b110101: "IMPLEMENTATION DEFINED fault (Unsupported Exclusive or Atomic access)",
}

EC_HVC64 = 0x16
EC_SVC64 = 0x15
EC_SMC64 = 0x17
EC_SYS64 = 0x18
EC_IABT_LOW, EC_IABT_CUR, EC_DABT_LOW, EC_DABT_CUR = 0x20, 0x21, 0x24, 0x25
EC_BRK64 = 0x3C
EC_SERROR = 0x2F


def exception_class(value: int) -> int:
    """ESR_ELx.EC, bits [31:26]."""
    return bits(value, 31, 26)


def instruction_length(value: int) -> int:
    """Bytes of the trapped instruction, from ESR_ELx.IL (bit 25): 4 (32-bit), else 2 (a 16-bit T32
    instruction; also what IL = 0 reads as when no instruction applies)."""
    return 4 if bits(value, 25, 25) else 2


def hvc_immediate(value: int) -> int | None:
    """The imm16 of an HVC64 syndrome (ISS[15:0]), or None if the syndrome is not an HVC."""
    return bits(value, 15, 0) if exception_class(value) == EC_HVC64 else None


def never_taken(esr_value: int) -> bool:
    """An all-zero ESR_ELx: no exception has been taken to that EL since reset (QEMU resets it to 0;
    the Arm ARM leaves it UNKNOWN). A taken exception never writes 0: IL is 1 for an exception
    reported with EC 0b000000 (ESR_ELx.IL: "an exception reported using EC value 0b000000")."""
    return esr_value == 0


def never_taken_summary(el: int) -> str:
    return (f"no exception taken to EL{el} yet: ESR_EL{el} still reads 0, as out of reset (a taken exception "
            f"with EC 0x00, UNKNOWN, would have IL = 1)")


def ec_name(ec: int) -> str:
    return EXCEPTION_CLASSES.get(ec, (f"EC_{ec:#04x}", ""))[0]


def fault_status(fsc: int) -> str:
    return FAULT_STATUS.get(fsc, f"reserved fault status code {fsc:#04x}")


def fault_level(fsc: int) -> int | None:
    """The translation level a fault status code names, or None."""
    text = FAULT_STATUS.get(fsc, "")
    if "level -1" in text:
        return -1
    for n in range(4):
        if f"level {n}" in text:
            return n
    return None


def _f(name, hi, lo, value, meaning=""):
    span = f"[{hi}]" if hi == lo else f"[{hi}:{lo}]"
    return FieldValue(name, span, value, meaning)


def _abort_iss(iss: int, data: bool) -> tuple[list, str]:
    fields = []
    fsc = bits(iss, 5, 0)
    if data:
        isv = bits(iss, 24, 24)
        fields.append(_f("ISV", 24, 24, isv, "SAS/SSE/SRT/SF/AR are valid" if isv else "no instruction syndrome"))
        if isv:
            sas = bits(iss, 23, 22)
            fields += [
                _f("SAS", 23, 22, sas, ("byte", "halfword", "word", "doubleword")[sas]),
                _f("SSE", 21, 21, bits(iss, 21, 21), "sign-extended" if bits(iss, 21, 21) else "not sign-extended"),
                _f("SRT", 20, 16, bits(iss, 20, 16), f"register x{bits(iss, 20, 16)}"),
                _f("SF", 15, 15, bits(iss, 15, 15), "64-bit register" if bits(iss, 15, 15) else "32-bit register"),
                _f("AR", 14, 14, bits(iss, 14, 14), "acquire/release" if bits(iss, 14, 14) else "no acquire/release"),
            ]
        fields.append(_f("VNCR", 13, 13, bits(iss, 13, 13), "VNCR_EL2 access" if bits(iss, 13, 13) else ""))
    fields += [
        _f("SET", 12, 11, bits(iss, 12, 11)),
        _f("FnV", 10, 10, bits(iss, 10, 10), "FAR is not valid" if bits(iss, 10, 10) else "FAR is valid"),
        _f("EA", 9, 9, bits(iss, 9, 9), "external abort" if bits(iss, 9, 9) else ""),
    ]
    if data:
        fields.append(_f("CM", 8, 8, bits(iss, 8, 8), "cache maintenance or AT" if bits(iss, 8, 8) else ""))
    fields.append(_f("S1PTW", 7, 7, bits(iss, 7, 7),
                     "stage 2 fault on a stage 1 table walk" if bits(iss, 7, 7) else ""))
    if data:
        fields.append(_f("WnR", 6, 6, bits(iss, 6, 6), "write" if bits(iss, 6, 6) else "read"))
    fields.append(_f("DFSC" if data else "IFSC", 5, 0, fsc, fault_status(fsc)))
    what = "data" if data else "instruction"
    access = (" " + ("write" if bits(iss, 6, 6) else "read")) if data and not bits(iss, 8, 8) else ""
    summary = f"{fault_status(fsc)} on {what}{access}"
    if bits(iss, 7, 7):
        summary += " (during a stage 1 table walk)"
    return fields, summary


def sys64_encoding(iss: int) -> tuple[int, int, int, int, int]:
    """(op0, op1, CRn, CRm, op2) of the register an EC 0x18 syndrome names (ISS.Op0/Op1/CRn/CRm/Op2)."""
    return bits(iss, 21, 20), bits(iss, 16, 14), bits(iss, 13, 10), bits(iss, 4, 1), bits(iss, 19, 17)


def _sys64_iss(iss: int) -> tuple[list, str]:
    op0, op1, crn, crm, op2 = sys64_encoding(iss)
    rt, direction = bits(iss, 9, 5), bits(iss, 0, 0)
    name = encoding_name(op0, op1, crn, crm, op2)
    reg = "xzr" if rt == 31 else f"x{rt}"
    fields = [
        _f("Op0", 21, 20, op0), _f("Op2", 19, 17, op2), _f("Op1", 16, 14, op1), _f("CRn", 13, 10, crn),
        _f("Rt", 9, 5, rt, reg), _f("CRm", 4, 1, crm),
        _f("Direction", 0, 0, direction, "read (MRS)" if direction else "write (MSR)"),
    ]
    if op0 in (0, 1):
        summary = f"trapped system instruction SYS #{op1}, C{crn}, C{crm}, #{op2}, {reg}"
    else:
        summary = f"trapped MRS {reg}, {name}" if direction else f"trapped MSR {name}, {reg}"
    return fields, summary


def _wfx_iss(iss: int) -> tuple[list, str]:
    ti = bits(iss, 1, 0)
    kind = ("WFI", "WFE", "WFIT", "WFET")[ti]
    fields = [_f("CV", 24, 24, bits(iss, 24, 24)), _f("COND", 23, 20, bits(iss, 23, 20)),
              _f("RN", 9, 5, bits(iss, 9, 5)), _f("RV", 2, 2, bits(iss, 2, 2)), _f("TI", 1, 0, ti, kind)]
    return fields, f"trapped {kind}"


def _serror_iss(iss: int) -> tuple[list, str]:
    ids = bits(iss, 24, 24)
    fields = [_f("IDS", 24, 24, ids, "IMPLEMENTATION DEFINED syndrome" if ids else "architected syndrome")]
    if ids:
        return fields, "SError with an IMPLEMENTATION DEFINED syndrome"
    aet = bits(iss, 12, 10)
    aet_names = {0: "uncontainable (UC)", 1: "unrecoverable (UEU)", 2: "restartable (UEO)",
                 3: "recoverable (UER)", 6: "corrected (CE)"}
    dfsc = bits(iss, 5, 0)
    dfsc_text = {0: "uncategorized", 0b010001: "asynchronous SError interrupt"}.get(dfsc, f"{dfsc:#04x}")
    fields += [_f("AET", 12, 10, aet, aet_names.get(aet, "reserved")), _f("EA", 9, 9, bits(iss, 9, 9)),
               _f("DFSC", 5, 0, dfsc, dfsc_text)]
    return fields, f"SError ({dfsc_text})"


def _imm16_iss(ec: int, iss: int) -> tuple[list, str]:
    imm = bits(iss, 15, 0)
    insn = {0x11: "SVC", 0x12: "HVC", 0x13: "SMC", 0x15: "SVC", 0x16: "HVC", 0x17: "SMC", 0x3C: "BRK",
            0x38: "BKPT"}[ec]
    return [_f("imm16", 15, 0, imm, f"#{imm:#x}")], f"{insn} #{imm:#x}"


def _fp_exc_iss(iss: int) -> tuple[list, str]:
    names = [("IDF", 7), ("IXF", 4), ("UFF", 3), ("OFF", 2), ("DZF", 1), ("IOF", 0)]
    fields = [_f("TFV", 23, 23, bits(iss, 23, 23))] + [_f(n, b, b, bits(iss, b, b)) for n, b in names]
    raised = [n for n, b in names if bits(iss, b, b)] if bits(iss, 23, 23) else []
    return fields, "floating-point exception" + (f" ({', '.join(raised)})" if raised else "")


def _watchpoint_iss(iss: int) -> tuple[list, str]:
    fields = [_f("CM", 8, 8, bits(iss, 8, 8)), _f("WnR", 6, 6, bits(iss, 6, 6), "write" if bits(iss, 6, 6) else "read"),
              _f("DFSC", 5, 0, bits(iss, 5, 0))]
    return fields, "watchpoint hit on " + ("write" if bits(iss, 6, 6) else "read")


def _decode_iss(ec: int, iss: int) -> tuple[list, str]:
    if ec in (0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x3C, 0x38):
        return _imm16_iss(ec, iss)
    if ec in (EC_DABT_LOW, EC_DABT_CUR):
        return _abort_iss(iss, data=True)
    if ec in (EC_IABT_LOW, EC_IABT_CUR):
        return _abort_iss(iss, data=False)
    if ec == EC_SYS64:
        return _sys64_iss(iss)
    if ec == 0x01:
        return _wfx_iss(iss)
    if ec == EC_SERROR:
        return _serror_iss(iss)
    if ec in (0x28, 0x2C):
        return _fp_exc_iss(iss)
    if ec in (0x34, 0x35):
        return _watchpoint_iss(iss)
    if ec in (0x32, 0x33):
        return ([_f("ISV", 24, 24, bits(iss, 24, 24)), _f("EX", 6, 6, bits(iss, 6, 6)),
                 _f("IFSC", 5, 0, bits(iss, 5, 0))], "software step completed")
    if ec == 0x0D:
        return [_f("BTYPE", 1, 0, bits(iss, 1, 0))], f"branch target exception, BTYPE {bits(iss, 1, 0)}"
    if ec == 0x1A:
        return ([_f("ERET", 1, 1, bits(iss, 1, 1)), _f("ERETA", 0, 0, bits(iss, 0, 0))],
                "trapped " + (("ERETAB" if bits(iss, 0, 0) else "ERETAA") if bits(iss, 1, 1) else "ERET"))
    if ec == 0x1D:
        return [_f("SMTC", 2, 0, bits(iss, 2, 0))], "SME access trapped"
    if ec == 0x07:
        return [_f("CV", 24, 24, bits(iss, 24, 24)), _f("COND", 23, 20, bits(iss, 23, 20))], \
            "FP/SIMD/SVE/SME access trapped"
    known = EXCEPTION_CLASSES.get(ec)
    if known:
        return [_f("ISS", 24, 0, iss)] if iss else [], known[1]
    return [_f("ISS", 24, 0, iss)], f"unknown exception class {ec:#04x}"


def decode(value: int, register: str = "ESR_EL2") -> Decoded:
    """ESR_ELx taken apart: EC, IL, ISS (decoded for the classes above), ISS2; with a summary."""
    value &= MASK64
    ec, il, iss, iss2 = bits(value, 31, 26), bits(value, 25, 25), bits(value, 24, 0), bits(value, 36, 32)
    name, desc = EXCEPTION_CLASSES.get(ec, (f"EC_{ec:#04x}", "unallocated exception class"))
    fields = [_f("EC", 31, 26, ec, f"{name}: {desc}"),
              _f("IL", 25, 25, il, "32-bit instruction" if il else "16-bit instruction or no instruction")]
    iss_fields, summary = _decode_iss(ec, iss)
    fields += iss_fields
    if iss2:
        fields.append(_f("ISS2", 36, 32, iss2))
    if value >> 37:
        fields.append(_f("RES0", 63, 37, value >> 37, "should be zero"))
    dec = Decoded(register, value, fields, f"EC {ec:#04x} {name}: {summary}")
    dec.explain = _explain(register, ec, iss, summary)
    return dec


def _explain(register: str, ec: int, iss: int, summary: str) -> list[str]:
    el = register[-1] if register[-1].isdigit() else "x"
    lines = [f"{register} says why the CPU last took an exception to EL{el}: {summary}."]
    if ec == EC_HVC64:
        lines.append(f"An HVC from EL1 enters EL2 at VBAR_EL2 + 0x400 (Lower EL, AArch64, Synchronous); "
                     f"the immediate #{bits(iss, 15, 0):#x} is only a tag: the function ID is in x0 by convention. "
                     f"ELR_EL2 points after the hvc, so ERET resumes the caller.")
    elif ec in (EC_DABT_CUR, EC_IABT_CUR):
        lines.append(f"The fault happened at EL{el} itself: the handler's own code faulted, so the far register "
                     f"(FAR_EL{el}) holds the address and ELR_EL{el} the faulting instruction.")
    elif ec in (EC_DABT_LOW, EC_IABT_LOW):
        lines.append(f"A lower EL faulted and the fault was routed to EL{el} (for EL2: a stage 2 fault, "
                     "the IPA is in HPFAR_EL2).")
    elif ec == EC_SYS64:
        lines.append("A control bit (HCR_EL2, CPTR_EL2, MDCR_EL2...) made this system register access trap.")
    elif ec == 0:
        lines.append("EC 0 is also what a register reads before any exception has been taken to that EL.")
    return lines

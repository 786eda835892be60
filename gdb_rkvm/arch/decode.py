"""One entry point: decode(NAME, value) for any catalogued register, with a summary and explanations."""

from gdb_rkvm.arch import esr, mair, pstate, regfields, sysregs
from gdb_rkvm.arch.fields import Decoded, MASK64, decode_fields, set_flags


def _generic(name: str, value: int, all_fields: bool = False) -> Decoded:
    table = regfields.TABLES.get(name, [])
    fields = decode_fields(value, table, show_zero_flags=all_fields)
    by_name = {f.name: f for f in table}
    flags = [n for n in set_flags(value, table) if not by_name[n].values]  # known fields say what they mean
    # zero-valued numeric fields (RES0 in practice) only add noise to a one-line summary
    multi = [f"{f.name}={f.meaning or hex(f.value)}" for f in fields
             if f.name not in flags and (f.value or by_name[f.name].values)]
    summary = ", ".join(x for x in (" ".join(flags), ", ".join(multi)) if x) or f"{value:#x}"
    return Decoded(name, value, fields, summary)


def _explain_generic(dec: Decoded) -> list[str]:
    reg = sysregs.lookup(dec.register)
    lines = [f"{dec.register}: {reg.doc}." if reg else f"{dec.register} = {dec.value:#x}."]
    table = {f.name: f for f in regfields.TABLES.get(dec.register, [])}
    for fv in dec.fields:
        doc = table[fv.name].doc if fv.name in table else ""
        if doc and (fv.value or table[fv.name].values):
            meaning = f" ({fv.meaning})" if fv.meaning not in ("", "set") else ""
            lines.append(f"{fv.name}{fv.span} = {fv.value:#x}: {doc}{meaning}")
    if dec.register == "SCTLR_EL2":
        on = bool(dec.value & 1)
        lines.append("EL2's MMU is " + ("on: EL2 addresses are virtual, translated by TTBR0_EL2." if on else
                                         "off: VBAR_EL2, ELR_EL2 and every EL2 PC are physical addresses."))
    if dec.register == "HCR_EL2" and not dec.value & 1:
        lines.append("HCR_EL2.VM is 0: no stage 2, EL1 addresses translate by stage 1 only (this is a host, "
                     "not a guest).")
    return lines


def canonical_name(name: str) -> str:
    """The catalogue's spelling of `name` (SCTLR_EL1, CurrentEL...), or `name` upper-cased."""
    reg = sysregs.lookup(name)
    return reg.name if reg else name.upper()


def decode(name: str, value: int, all_fields: bool = False) -> Decoded:
    """Decode `value` as register `name`. Never raises for any 64-bit value. all_fields: every
    field of the register's table, single-bit flags at 0 included (the summary is the same)."""
    name = canonical_name(name)
    value &= MASK64
    if name.startswith("ESR_EL"):
        return esr.decode(value, name)
    if name.startswith("SPSR_EL") or name in ("CPSR", "PSTATE"):
        return pstate.decode(value, name)
    if name.startswith("MAIR_EL"):
        return mair.decode(value, name)
    dec = _generic(name, value, all_fields)
    if all_fields:
        dec.summary = _generic(name, value).summary
    dec.explain = _explain_generic(dec)
    return dec


def decodable() -> list[str]:
    """Names with a field-level decoder (every catalogued register can be read and shown in hex)."""
    extra = [r for r in sysregs.names() if r.startswith(("ESR_EL", "SPSR_EL", "MAIR_EL"))]
    return sorted(set(regfields.TABLES) | set(extra))

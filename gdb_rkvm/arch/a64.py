"""A64 instructions classified for control- and data-flow questions, from capstone's detail mode.

Each 4-byte word becomes one `A64Insn`: what kind of instruction it is (branch, call, exception
return, system register access...), its direct target, the registers it reads and writes and its
memory operand. The classification uses capstone's instruction ids, operands and register access
lists, never its text; the system register an MRS/MSR names is decoded from the instruction's own
encoding fields (op0, op1, CRn, CRm, op2), as the Arm ARM's "System instructions" class gives them.
"""

from dataclasses import dataclass, field
from functools import lru_cache

import capstone

from gdb_rkvm.arch import sysregs
from gdb_rkvm.arch.fields import MASK64

try:  # capstone 5
    from capstone import arm64_const as _cs
    _PREFIX = "ARM64_"
except ImportError:  # pragma: no cover  (capstone 6 renamed the architecture)
    from capstone import aarch64_const as _cs
    _PREFIX = "AARCH64_"


def _const(name: str) -> int | None:
    return getattr(_cs, _PREFIX + name, None)


def _ids(*names: str) -> frozenset:
    return frozenset(v for v in (_const("INS_" + n) for n in names) if v is not None)


_B, _BL, _BR, _BLR = _ids("B"), _ids("BL"), _ids("BR", "BRAA", "BRAAZ", "BRAB", "BRABZ"), \
    _ids("BLR", "BLRAA", "BLRAAZ", "BLRAB", "BLRABZ")
_RET, _ERET = _ids("RET", "RETAA", "RETAB"), _ids("ERET", "ERETAA", "ERETAB")
_COND = _ids("CBZ", "CBNZ", "TBZ", "TBNZ")
_CALLS_TO_EL = _ids("HVC", "SVC", "SMC")
_TRAPS = _ids("BRK", "HLT", "UDF")
_ISB, _BARRIER = _ids("ISB"), _ids("DSB", "DMB", "SB")
_MRS, _MSR = _ids("MRS"), _ids("MSR")
_ADR, _ADRP = _ids("ADR"), _ids("ADRP")
_CACHE_TLB = _ids("AT", "TLBI", "DC", "IC", "SYS", "SYSL")
_WAIT = _ids("WFE", "WFI", "WFET", "WFIT")
_NOP = _ids("NOP")
_LITERAL_LOADS = _ids("LDR", "LDRSW", "PRFM")

_OP_REG, _OP_IMM, _OP_MEM = _const("OP_REG"), _const("OP_IMM"), _const("OP_MEM")
_CC_INVALID, _CC_AL = _const("CC_INVALID"), _const("CC_AL")

# Kinds, in the words a reader of the findings would use.
BRANCH = "branch"              # b label
COND_BRANCH = "cond-branch"    # b.cond, cbz, cbnz, tbz, tbnz
CALL = "call"                  # bl label
BRANCH_REG = "branch-reg"      # br xN
CALL_REG = "call-reg"          # blr xN
RET = "ret"
ERET = "eret"
EXCEPTION = "exception"        # hvc, svc, smc: take an exception and come back after it
TRAP = "trap"                  # brk, hlt, udf: take an exception at this instruction
ISB = "isb"
BARRIER = "barrier"
MRS = "mrs"
MSR = "msr"
MSR_PSTATE = "msr-pstate"      # MSR (immediate): DAIFSet, DAIFClr, SPSel...
ADR = "adr"
ADRP = "adrp"
LITERAL = "literal"            # ldr xN, label (a PC-relative load of a literal)
MEMORY = "memory"              # any other load or store
CACHE_TLB = "cache-tlb"        # at, tlbi, dc, ic
WAIT = "wait"                  # wfe, wfi
NOP = "nop"                    # also what the assembler pads code alignment with
PADDING = "padding"            # the word 0 (UDF #0): alignment fill, never meant to run
UNDEFINED = "undefined"        # capstone cannot decode it
OTHER = "other"

# Kinds after which the next word does not run (on this path).
ENDS_FLOW = frozenset({BRANCH, BRANCH_REG, RET, ERET, TRAP, PADDING, UNDEFINED})


@dataclass(frozen=True)
class A64Insn:
    address: int
    word: int
    text: str
    kind: str
    target: int | None = None          # direct branch/call target, adr address, adrp page, literal address
    reads: frozenset = field(default_factory=frozenset)
    writes: frozenset = field(default_factory=frozenset)
    mem_base: str | None = None
    mem_index: str | None = None
    mem_shift: int = 0
    mem_disp: int = 0
    mem_write: bool = False
    writeback: bool = False
    imm: int | None = None             # the last immediate operand (add x1, x1, #imm; lsl amounts excluded)
    reg_shift: int = 0                 # the shift of a shifted register operand (add x3, x3, x2, lsl #2)
    sysreg: str | None = None          # the register an MRS/MSR (register) names, architectural spelling
    pstate: str | None = None          # the PSTATE field of an MSR (immediate)

    @property
    def ends_flow(self) -> bool:
        return self.kind in ENDS_FLOW

    @property
    def is_conditional(self) -> bool:
        return self.kind == COND_BRANCH

    def uses_sp_for_memory(self) -> bool:
        return self.kind in (MEMORY, LITERAL) and self.mem_base == "sp"

    def adjusts_sp(self) -> bool:
        """Writes sp from sp (sub sp, sp, #16; a pre/post-indexed access through sp)."""
        return "sp" in self.writes and "sp" in self.reads

    def sets_sp(self) -> bool:
        """Writes sp from another register (mov sp, x1; add sp, x0, #0x400): a new stack."""
        return "sp" in self.writes and "sp" not in self.reads


@lru_cache(maxsize=1)
def _engine():
    arch = getattr(capstone, "CS_ARCH_ARM64", None)
    if arch is None:  # pragma: no cover
        arch = capstone.CS_ARCH_AARCH64
    md = capstone.Cs(arch, capstone.CS_MODE_ARM)
    md.detail = True
    return md


def _reg(md, reg_id: int) -> str | None:
    """Register name with W aliases folded into X (w3 -> x3, wsp -> sp); zero registers give None."""
    name = md.reg_name(reg_id)
    if not name:
        return None
    if name in ("xzr", "wzr"):
        return None
    if name == "wsp":
        return "sp"
    if name in ("lr", "fp"):
        return {"lr": "x30", "fp": "x29"}[name]
    if name[0] == "w" and name[1:].isdigit():
        return "x" + name[1:]
    return name


# --- System register accesses, from the encoding ---

def sysreg_access(word: int) -> tuple[tuple, bool] | None:
    """((op0, op1, CRn, CRm, op2), is_read) of an MRS or MSR (register), else None.

    Encoding: 1101 0101 00 L 1 o0 op1 CRn CRm op2 Rt, with L = 1 for MRS and op0 = 2 + o0.
    """
    if word & 0xFFD00000 != 0xD5100000:
        return None
    enc = (2 + (word >> 19 & 1), word >> 16 & 7, word >> 12 & 0xF, word >> 8 & 0xF, word >> 5 & 7)
    return enc, bool(word >> 21 & 1)


_PSTATE_FIELDS = {(0, 5): "SPSel", (3, 6): "DAIFSet", (3, 7): "DAIFClr", (0, 4): "PAN", (0, 3): "UAO",
                  (3, 1): "SSBS", (3, 2): "DIT", (0, 1): "SVCR"}


def pstate_field(word: int) -> str | None:
    """The PSTATE field an MSR (immediate) writes: 1101 0101 0000 0 op1 0100 CRm op2 11111."""
    if word & 0xFFF8F01F != 0xD500401F:
        return None
    return _PSTATE_FIELDS.get((word >> 16 & 7, word >> 5 & 7), "PSTATE")


def _classify(insn, word: int) -> str:
    i = insn.id
    if i in _B:
        cc = getattr(insn, "cc", _CC_INVALID)
        return COND_BRANCH if cc not in (_CC_INVALID, _CC_AL, None) else BRANCH
    if i in _COND:
        return COND_BRANCH
    if i in _BL:
        return CALL
    if i in _BLR:
        return CALL_REG
    if i in _BR:
        return BRANCH_REG
    if i in _RET:
        return RET
    if i in _ERET:
        return ERET
    if i in _CALLS_TO_EL:
        return EXCEPTION
    if i in _TRAPS:
        return PADDING if word == 0 else TRAP
    if i in _ISB:
        return ISB
    if i in _BARRIER:
        return BARRIER
    if i in _MRS and sysreg_access(word):
        return MRS
    if i in _MSR:
        return MSR if sysreg_access(word) else MSR_PSTATE
    if i in _ADR:
        return ADR
    if i in _ADRP:
        return ADRP
    if i in _CACHE_TLB:
        return CACHE_TLB
    if i in _WAIT:
        return WAIT
    if i in _NOP:
        return NOP
    ops = insn.operands
    if i in _LITERAL_LOADS and any(o.type == _OP_IMM for o in ops) and not any(o.type == _OP_MEM for o in ops):
        return LITERAL
    if any(o.type == _OP_MEM for o in ops):
        return MEMORY
    return OTHER


def _insn(md, insn, word: int) -> A64Insn:
    kind = _classify(insn, word)
    reads, writes = insn.regs_access()
    reads = frozenset(r for r in (_reg(md, x) for x in reads) if r)
    writes = frozenset(r for r in (_reg(md, x) for x in writes) if r)
    target = imm = None
    mem = {}
    reg_shift = 0
    for o in insn.operands:
        if o.type == _OP_IMM:
            imm = o.imm
        elif o.type == _OP_REG and o.shift.value:
            reg_shift = o.shift.value
        elif o.type == _OP_MEM:
            mem = {"mem_base": _reg(md, o.mem.base) if o.mem.base else None,
                   "mem_index": _reg(md, o.mem.index) if o.mem.index else None,
                   "mem_shift": o.shift.value if o.mem.index else 0, "mem_disp": o.mem.disp,
                   "mem_write": bool(getattr(o, "access", 0) & capstone.CS_AC_WRITE)}
    if kind in (BRANCH, COND_BRANCH, CALL, ADR, ADRP, LITERAL) and imm is not None:
        target = imm & MASK64   # capstone gives it as a signed 64-bit value
    sysreg = None
    access = sysreg_access(word)
    if access and kind in (MRS, MSR):
        sysreg = sysregs.encoding_name(*access[0])
    return A64Insn(insn.address, word, f"{insn.mnemonic} {insn.op_str}".strip(), kind, target, reads, writes,
                   writeback=bool(insn.writeback), imm=imm, reg_shift=reg_shift, sysreg=sysreg,
                   pstate=pstate_field(word) if kind == MSR_PSTATE else None, **mem)


def decode_word(word: int, address: int) -> A64Insn:
    """One instruction word at `address`. Never raises."""
    md = _engine()
    raw = word.to_bytes(4, "little")
    decoded = list(md.disasm(raw, address, 1))
    if not decoded:
        return A64Insn(address, word, f".inst {word:#010x}", PADDING if word == 0 else UNDEFINED)
    return _insn(md, decoded[0], word)


def decode(code: bytes, address: int) -> list[A64Insn]:
    """Every 4-byte word of `code` (linked at `address`) as an A64Insn."""
    return [decode_word(int.from_bytes(code[o:o + 4], "little"), address + o)
            for o in range(0, len(code) - len(code) % 4, 4)]


# --- Facts about system registers at EL2 ---

# Writes that change how later instructions execute only after a context synchronization event
# (an ISB, taking an exception, or an exception return). Until then the CPU may still use the old value.
NEEDS_CONTEXT_SYNC = {
    "VBAR_EL2": "where exceptions taken to EL2 go",
    "HCR_EL2": "what EL1 traps to EL2, stage 2 (HCR_EL2.VM), and whether _EL1 names mean EL2 registers (E2H)",
    "SCTLR_EL2": "EL2's MMU (SCTLR_EL2.M), caches (C, I) and alignment checks",
    "VTTBR_EL2": "the stage 2 tables and VMID used for EL1's accesses",
}

# EL1 registers an EL2 handler usually means to read as their EL2 counterpart. With HCR_EL2.E2H == 0
# the _EL1 name reaches the EL1 register; with E2H == 1 (VHE) the same encoding is redirected to the
# EL2 register. Reading EL1's copy is right only when saving or restoring EL1's context.
EL2_COUNTERPART = {
    "SCTLR_EL1": "SCTLR_EL2", "ACTLR_EL1": "ACTLR_EL2", "CPACR_EL1": "CPTR_EL2", "TTBR0_EL1": "TTBR0_EL2",
    "TTBR1_EL1": "TTBR1_EL2", "TCR_EL1": "TCR_EL2", "SPSR_EL1": "SPSR_EL2", "ELR_EL1": "ELR_EL2",
    "AFSR0_EL1": "AFSR0_EL2", "AFSR1_EL1": "AFSR1_EL2", "ESR_EL1": "ESR_EL2", "FAR_EL1": "FAR_EL2",
    "MAIR_EL1": "MAIR_EL2", "AMAIR_EL1": "AMAIR_EL2", "VBAR_EL1": "VBAR_EL2", "CONTEXTIDR_EL1": "CONTEXTIDR_EL2",
    "TPIDR_EL1": "TPIDR_EL2", "CNTKCTL_EL1": "CNTHCTL_EL2",
}

# What the exception-state registers describe, for the EL1 ones read at EL2.
EXCEPTION_STATE_EL1 = {"ESR_EL1", "ELR_EL1", "SPSR_EL1", "FAR_EL1"}

# Registers that tell one CPU from another, for per-CPU data (stacks) at EL2.
PER_CPU_SOURCES = {"MPIDR_EL1", "TPIDR_EL2"}

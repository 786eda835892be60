"""The system register catalogue: architectural name, MRS/MSR encoding, exception level, purpose.

Encodings are (op0, op1, CRn, CRm, op2) as in the Arm ARM's "System register encoding" tables;
they name the register in a trapped MSR/MRS (ESR_ELx.EC == 0x18) and in disassembly.
"""

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class SysReg:
    name: str
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    doc: str

    @property
    def encoding(self) -> tuple:
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    @property
    def el(self) -> int:
        """The lowest EL the name belongs to (from its suffix; 0 for _EL0 and unsuffixed ones)."""
        for n in (3, 2, 1, 0):
            if self.name.endswith(f"_EL{n}"):
                return n
        return 0

    def generic_name(self) -> str:
        return f"S{self.op0}_{self.op1}_C{self.crn}_C{self.crm}_{self.op2}"


def _r(name, op0, op1, crn, crm, op2, doc):
    return SysReg(name, op0, op1, crn, crm, op2, doc)


_TABLE = [
    # Identification
    _r("MIDR_EL1", 3, 0, 0, 0, 0, "Main ID: implementer, part number, revision"),
    _r("MPIDR_EL1", 3, 0, 0, 0, 5, "Multiprocessor affinity: which CPU this is (Aff0..Aff3)"),
    _r("REVIDR_EL1", 3, 0, 0, 0, 6, "Revision ID, implementation defined"),
    _r("ID_AA64PFR0_EL1", 3, 0, 0, 4, 0, "Processor features 0: which ELs exist and in which states, FP, GIC, SVE"),
    _r("ID_AA64PFR1_EL1", 3, 0, 0, 4, 1, "Processor features 1: BTI, SSBS, MTE, SME"),
    _r("ID_AA64DFR0_EL1", 3, 0, 0, 5, 0, "Debug features 0: breakpoints, watchpoints, PMU"),
    _r("ID_AA64ISAR0_EL1", 3, 0, 0, 6, 0, "Instruction set attributes 0: AES, SHA, CRC32, atomics"),
    _r("ID_AA64ISAR1_EL1", 3, 0, 0, 6, 1, "Instruction set attributes 1: PAuth, JSCVT, LRCPC"),
    _r("ID_AA64MMFR0_EL1", 3, 0, 0, 7, 0, "Memory model features 0: PA size, granules supported"),
    _r("ID_AA64MMFR1_EL1", 3, 0, 0, 7, 1, "Memory model features 1: VHE, PAN, VMID size, HAFDBS"),
    _r("ID_AA64MMFR2_EL1", 3, 0, 0, 7, 2, "Memory model features 2: VA size (LVA), NV, CnP"),
    _r("CTR_EL0", 3, 3, 0, 0, 1, "Cache type: line sizes, I-cache policy"),
    _r("DCZID_EL0", 3, 3, 0, 0, 7, "DC ZVA block size"),
    # EL1 and EL0
    _r("SCTLR_EL1", 3, 0, 1, 0, 0, "System control for EL1&0: MMU, caches, alignment, endianness"),
    _r("ACTLR_EL1", 3, 0, 1, 0, 1, "Auxiliary control EL1, implementation defined"),
    _r("CPACR_EL1", 3, 0, 1, 0, 2, "Traps of FP/SIMD/SVE at EL1&0"),
    _r("TTBR0_EL1", 3, 0, 2, 0, 0, "Translation table base 0 (lower VA range) for EL1&0"),
    _r("TTBR1_EL1", 3, 0, 2, 0, 1, "Translation table base 1 (upper VA range, the kernel's) for EL1&0"),
    _r("TCR_EL1", 3, 0, 2, 0, 2, "Translation control for EL1&0: VA sizes, granules, cacheability of walks"),
    _r("SPSR_EL1", 3, 0, 4, 0, 0, "Saved PSTATE when an exception is taken to EL1"),
    _r("ELR_EL1", 3, 0, 4, 0, 1, "Return address of the last exception taken to EL1"),
    _r("SP_EL0", 3, 0, 4, 1, 0, "Stack pointer for EL0 (and for ELxt)"),
    _r("SPSel", 3, 0, 4, 2, 0, "Stack pointer select: SP_EL0 or SP_ELx"),
    _r("CurrentEL", 3, 0, 4, 2, 2, "The current exception level, in bits [3:2]"),
    _r("AFSR0_EL1", 3, 0, 5, 1, 0, "Auxiliary fault status 0 EL1"),
    _r("AFSR1_EL1", 3, 0, 5, 1, 1, "Auxiliary fault status 1 EL1"),
    _r("ESR_EL1", 3, 0, 5, 2, 0, "Exception syndrome for exceptions taken to EL1"),
    _r("FAR_EL1", 3, 0, 6, 0, 0, "Faulting virtual address for aborts taken to EL1"),
    _r("PAR_EL1", 3, 0, 7, 4, 0, "Physical address returned by an AT instruction"),
    _r("MAIR_EL1", 3, 0, 10, 2, 0, "Memory attribute indirection for EL1&0 (AttrIndx -> memory type)"),
    _r("AMAIR_EL1", 3, 0, 10, 3, 0, "Auxiliary memory attribute indirection EL1"),
    _r("VBAR_EL1", 3, 0, 12, 0, 0, "Vector base address for exceptions taken to EL1"),
    _r("ISR_EL1", 3, 0, 12, 1, 0, "Pending IRQ, FIQ, SError"),
    _r("CONTEXTIDR_EL1", 3, 0, 13, 0, 1, "Context ID (the kernel may put the PID here)"),
    _r("TPIDR_EL1", 3, 0, 13, 0, 4, "Thread pointer for EL1 (Linux: per-CPU offset)"),
    _r("CNTKCTL_EL1", 3, 0, 14, 1, 0, "Timer access control for EL0"),
    _r("TPIDR_EL0", 3, 3, 13, 0, 2, "Thread pointer for EL0 (TLS)"),
    _r("TPIDRRO_EL0", 3, 3, 13, 0, 3, "Read-only thread pointer for EL0"),
    _r("NZCV", 3, 3, 4, 2, 0, "Condition flags"),
    _r("DAIF", 3, 3, 4, 2, 1, "Interrupt masks: Debug, SError, IRQ, FIQ"),
    _r("FPCR", 3, 3, 4, 4, 0, "Floating-point control"),
    _r("FPSR", 3, 3, 4, 4, 1, "Floating-point status"),
    _r("CNTFRQ_EL0", 3, 3, 14, 0, 0, "Generic timer frequency"),
    _r("CNTPCT_EL0", 3, 3, 14, 0, 1, "Physical count"),
    _r("CNTVCT_EL0", 3, 3, 14, 0, 2, "Virtual count (physical count - CNTVOFF_EL2)"),
    _r("CNTP_TVAL_EL0", 3, 3, 14, 2, 0, "EL1 physical timer value"),
    _r("CNTP_CTL_EL0", 3, 3, 14, 2, 1, "EL1 physical timer control"),
    _r("CNTP_CVAL_EL0", 3, 3, 14, 2, 2, "EL1 physical timer compare value"),
    _r("CNTV_TVAL_EL0", 3, 3, 14, 3, 0, "Virtual timer value"),
    _r("CNTV_CTL_EL0", 3, 3, 14, 3, 1, "Virtual timer control"),
    _r("CNTV_CVAL_EL0", 3, 3, 14, 3, 2, "Virtual timer compare value"),
    _r("PMCR_EL0", 3, 3, 9, 12, 0, "Performance monitors control"),
    _r("MDSCR_EL1", 2, 0, 0, 2, 2, "Monitor debug system control: single step, debug exceptions"),
    _r("OSLAR_EL1", 2, 0, 1, 0, 4, "OS lock access"),
    _r("OSLSR_EL1", 2, 0, 1, 1, 4, "OS lock status"),
    _r("OSDLR_EL1", 2, 0, 1, 3, 4, "OS double lock"),
    _r("ICC_PMR_EL1", 3, 0, 4, 6, 0, "GICv3 CPU interface priority mask"),
    _r("ICC_IAR1_EL1", 3, 0, 12, 12, 0, "GICv3 interrupt acknowledge, group 1"),
    _r("ICC_EOIR1_EL1", 3, 0, 12, 12, 1, "GICv3 end of interrupt, group 1"),
    _r("ICC_HPPIR1_EL1", 3, 0, 12, 12, 2, "GICv3 highest priority pending interrupt, group 1"),
    _r("ICC_BPR1_EL1", 3, 0, 12, 12, 3, "GICv3 binary point, group 1"),
    _r("ICC_CTLR_EL1", 3, 0, 12, 12, 4, "GICv3 CPU interface control"),
    _r("ICC_SRE_EL1", 3, 0, 12, 12, 5, "GICv3 system register enable, EL1"),
    _r("ICC_IGRPEN1_EL1", 3, 0, 12, 12, 7, "GICv3 group 1 interrupt enable"),
    _r("ICC_DIR_EL1", 3, 0, 12, 11, 1, "GICv3 deactivate interrupt"),
    _r("ICC_RPR_EL1", 3, 0, 12, 11, 3, "GICv3 running priority"),
    _r("ICC_SGI1R_EL1", 3, 0, 12, 11, 5, "GICv3 generate SGI, group 1"),
    # EL2
    _r("VPIDR_EL2", 3, 4, 0, 0, 0, "Virtualization processor ID: what MIDR_EL1 reads at EL1"),
    _r("VMPIDR_EL2", 3, 4, 0, 0, 5, "Virtualization MPIDR: what MPIDR_EL1 reads at EL1"),
    _r("SCTLR_EL2", 3, 4, 1, 0, 0, "System control for EL2: MMU (M), caches, alignment, endianness"),
    _r("ACTLR_EL2", 3, 4, 1, 0, 1, "Auxiliary control EL2, implementation defined"),
    _r("HCR_EL2", 3, 4, 1, 1, 0, "Hypervisor configuration: what EL1 and EL0 trap to EL2, stage 2, routing"),
    _r("MDCR_EL2", 3, 4, 1, 1, 1, "Monitor debug configuration EL2: debug and PMU traps"),
    _r("CPTR_EL2", 3, 4, 1, 1, 2, "Architectural feature traps to EL2: FP/SIMD, SVE, trace"),
    _r("HSTR_EL2", 3, 4, 1, 1, 3, "Hypervisor system trap (AArch32 CP15)"),
    _r("HACR_EL2", 3, 4, 1, 1, 7, "Hypervisor auxiliary control"),
    _r("TTBR0_EL2", 3, 4, 2, 0, 0, "Translation table base for the EL2 regime"),
    _r("TTBR1_EL2", 3, 4, 2, 0, 1, "Translation table base 1 for EL2&0 (VHE only)"),
    _r("TCR_EL2", 3, 4, 2, 0, 2, "Translation control for the EL2 regime"),
    _r("VTTBR_EL2", 3, 4, 2, 1, 0, "Stage 2 translation table base and VMID"),
    _r("VTCR_EL2", 3, 4, 2, 1, 2, "Stage 2 translation control: IPA size, granule, start level"),
    _r("DACR32_EL2", 3, 4, 3, 0, 0, "AArch32 domain access control, for EL1 in AArch32"),
    _r("SPSR_EL2", 3, 4, 4, 0, 0, "Saved PSTATE when an exception is taken to EL2"),
    _r("ELR_EL2", 3, 4, 4, 0, 1, "Return address of the last exception taken to EL2 (ERET goes here)"),
    _r("SP_EL1", 3, 4, 4, 1, 0, "Stack pointer for EL1h"),
    _r("IFSR32_EL2", 3, 4, 5, 0, 1, "AArch32 instruction fault status"),
    _r("AFSR0_EL2", 3, 4, 5, 1, 0, "Auxiliary fault status 0 EL2"),
    _r("AFSR1_EL2", 3, 4, 5, 1, 1, "Auxiliary fault status 1 EL2"),
    _r("ESR_EL2", 3, 4, 5, 2, 0, "Exception syndrome for exceptions taken to EL2 (why EL2 was entered)"),
    _r("FPEXC32_EL2", 3, 4, 5, 3, 0, "AArch32 floating-point exception control"),
    _r("FAR_EL2", 3, 4, 6, 0, 0, "Faulting virtual address for aborts taken to EL2"),
    _r("HPFAR_EL2", 3, 4, 6, 0, 4, "Faulting IPA (bits [47:12] in FIPA) for stage 2 aborts"),
    _r("MAIR_EL2", 3, 4, 10, 2, 0, "Memory attribute indirection for the EL2 regime"),
    _r("AMAIR_EL2", 3, 4, 10, 3, 0, "Auxiliary memory attribute indirection EL2"),
    _r("VBAR_EL2", 3, 4, 12, 0, 0, "Vector base address for exceptions taken to EL2 (a PA while EL2's MMU is off)"),
    _r("RVBAR_EL2", 3, 4, 12, 0, 1, "Reset vector base address EL2"),
    _r("ICC_SRE_EL2", 3, 4, 12, 9, 5, "GICv3 system register enable, EL2"),
    _r("ICH_HCR_EL2", 3, 4, 12, 11, 0, "GICv3 virtual CPU interface control"),
    _r("ICH_VTR_EL2", 3, 4, 12, 11, 1, "GICv3 virtual CPU interface type"),
    _r("ICH_VMCR_EL2", 3, 4, 12, 11, 7, "GICv3 virtual machine control"),
    _r("CONTEXTIDR_EL2", 3, 4, 13, 0, 1, "Context ID EL2 (VHE)"),
    _r("TPIDR_EL2", 3, 4, 13, 0, 2, "Thread pointer for EL2 (scratch for hypervisors)"),
    _r("CNTVOFF_EL2", 3, 4, 14, 0, 3, "Virtual counter offset"),
    _r("CNTHCTL_EL2", 3, 4, 14, 1, 0, "Counter-timer hypervisor control: EL1 access to the physical timer"),
    _r("CNTHP_TVAL_EL2", 3, 4, 14, 2, 0, "EL2 physical timer value"),
    _r("CNTHP_CTL_EL2", 3, 4, 14, 2, 1, "EL2 physical timer control"),
    _r("CNTHP_CVAL_EL2", 3, 4, 14, 2, 2, "EL2 physical timer compare value"),
    _r("SP_EL2", 3, 6, 4, 1, 0, "Stack pointer for EL2h"),
    # EL2, later architecture extensions (FEAT_FGT, FEAT_FGT2, FEAT_HCX, SVE, SME, GCS, SPE, ECV,
    # FEAT_TCR2, FEAT_AIE, FEAT_S1PIE/S2PIE): present only when the CPU has the feature
    _r("HFGRTR_EL2", 3, 4, 1, 1, 4, "Fine-grained read traps of EL1 system registers to EL2 (FEAT_FGT)"),
    _r("HFGWTR_EL2", 3, 4, 1, 1, 5, "Fine-grained write traps of EL1 system registers to EL2 (FEAT_FGT)"),
    _r("HFGITR_EL2", 3, 4, 1, 1, 6, "Fine-grained traps of EL1 instructions (TLBI, DC, AT...) to EL2 (FEAT_FGT)"),
    _r("HDFGRTR2_EL2", 3, 4, 3, 1, 0, "Fine-grained read traps of debug registers, second set (FEAT_FGT2)"),
    _r("HDFGWTR2_EL2", 3, 4, 3, 1, 1, "Fine-grained write traps of debug registers, second set (FEAT_FGT2)"),
    _r("HFGRTR2_EL2", 3, 4, 3, 1, 2, "Fine-grained read traps, second set (FEAT_FGT2)"),
    _r("HFGWTR2_EL2", 3, 4, 3, 1, 3, "Fine-grained write traps, second set (FEAT_FGT2)"),
    _r("HDFGRTR_EL2", 3, 4, 3, 1, 4, "Fine-grained read traps of debug and trace registers (FEAT_FGT)"),
    _r("HDFGWTR_EL2", 3, 4, 3, 1, 5, "Fine-grained write traps of debug and trace registers (FEAT_FGT)"),
    _r("HAFGRTR_EL2", 3, 4, 3, 1, 6, "Fine-grained read traps of activity monitor registers (FEAT_AMUv1p1)"),
    _r("HFGITR2_EL2", 3, 4, 3, 1, 7, "Fine-grained instruction traps, second set (FEAT_FGT2)"),
    _r("ZCR_EL2", 3, 4, 1, 2, 0, "SVE vector length for EL2 and below"),
    _r("HCRX_EL2", 3, 4, 1, 2, 2, "Extended hypervisor configuration: more trap and enable bits (FEAT_HCX)"),
    _r("SMPRIMAP_EL2", 3, 4, 1, 2, 5, "SME streaming-mode priority mapping for EL1&0"),
    _r("SMCR_EL2", 3, 4, 1, 2, 6, "SME control: streaming vector length for EL2 and below"),
    _r("GCSCR_EL2", 3, 4, 2, 5, 0, "Guarded control stack control EL2 (FEAT_GCS)"),
    _r("GCSPR_EL2", 3, 4, 2, 5, 1, "Guarded control stack pointer EL2 (FEAT_GCS)"),
    _r("PMSCR_EL2", 3, 4, 9, 9, 0, "Statistical profiling control EL2 (FEAT_SPE)"),
    _r("CNTPOFF_EL2", 3, 4, 14, 0, 6, "Physical counter offset seen by EL1&0 (FEAT_ECV)"),
    _r("TCR2_EL2", 3, 4, 2, 0, 3, "Extended translation control EL2 (FEAT_TCR2)"),
    _r("MAIR2_EL2", 3, 4, 10, 1, 1, "Memory attribute indirection, second register (FEAT_AIE)"),
    _r("AMAIR2_EL2", 3, 4, 10, 3, 1, "Auxiliary memory attribute indirection, second register (FEAT_AIE)"),
    _r("PIR_EL2", 3, 4, 10, 2, 3, "Stage 1 permission indirection for the EL2 regime (FEAT_S1PIE)"),
    _r("S2PIR_EL2", 3, 4, 10, 2, 5, "Stage 2 permission indirection (FEAT_S2PIE)"),
    # EL3
    _r("SCTLR_EL3", 3, 6, 1, 0, 0, "System control EL3"),
    _r("SCR_EL3", 3, 6, 1, 1, 0, "Secure configuration: NS, routing of exceptions to EL3, HCE, SMD"),
    _r("SPSR_EL3", 3, 6, 4, 0, 0, "Saved PSTATE for exceptions taken to EL3"),
    _r("ELR_EL3", 3, 6, 4, 0, 1, "Return address for exceptions taken to EL3"),
    _r("ESR_EL3", 3, 6, 5, 2, 0, "Exception syndrome EL3"),
    _r("VBAR_EL3", 3, 6, 12, 0, 0, "Vector base address EL3"),
]

CATALOGUE: dict[str, SysReg] = {r.name.upper(): r for r in _TABLE}
_BY_ENCODING: dict[tuple, SysReg] = {r.encoding: r for r in _TABLE}


def lookup(name: str) -> SysReg | None:
    """The register called `name` (case-insensitive), or None."""
    return CATALOGUE.get(name.strip().upper())


def by_encoding(op0: int, op1: int, crn: int, crm: int, op2: int) -> SysReg | None:
    """The register an MRS/MSR with this encoding accesses, or None if not catalogued."""
    return _BY_ENCODING.get((op0, op1, crn, crm, op2))


def encoding_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str:
    """The architectural name, or the generic S<op0>_<op1>_C<n>_C<m>_<op2> form."""
    reg = by_encoding(op0, op1, crn, crm, op2)
    return reg.name if reg else f"S{op0}_{op1}_C{crn}_C{crm}_{op2}"


def closest(name: str, n: int = 3) -> list[str]:
    """Catalogued names that look like `name`, best first."""
    names = [r.name for r in _TABLE]
    upper = {x.upper(): x for x in names}
    hits = difflib.get_close_matches(name.upper(), list(upper), n=n, cutoff=0.5)
    return [upper[h] for h in hits]


def names() -> list[str]:
    return [r.name for r in _TABLE]

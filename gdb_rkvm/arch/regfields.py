"""Field layouts of the system registers gdb-rkvm decodes (Arm ARM register descriptions).

Where a register's layout depends on HCR_EL2.E2H, the E2H == 0 (non-VHE) layout is given: that is
what a hypervisor module under a non-VHE kernel sees.

Fields with `values` are the ones a register is known for: they are shown even when 0. `reset` is
given where the Arm ARM defines a reset value that applies to the lab (SCTLR_EL2.{M,C,I}: 0 on a
Warm reset when EL2 is the highest implemented Exception level, as on QEMU virt without EL3).
"""

from gdb_rkvm.arch.fields import F

_TG0 = {0b00: "4KB", 0b01: "64KB", 0b10: "16KB", 0b11: "reserved"}
_TG1 = {0b00: "reserved", 0b01: "16KB", 0b10: "4KB", 0b11: "64KB"}
_RGN = {0: "Non-cacheable", 1: "Write-Back RW-alloc", 2: "Write-Through R-alloc", 3: "Write-Back R-alloc"}
_SH = {0: "Non-shareable", 1: "reserved", 2: "Outer Shareable", 3: "Inner Shareable"}
_PS = {0: "32 bits, 4GB", 1: "36 bits, 64GB", 2: "40 bits, 1TB", 3: "42 bits, 4TB", 4: "44 bits, 16TB",
       5: "48 bits, 256TB", 6: "52 bits, 4PB", 7: "56 bits, 64PB"}
# ID_AA64PFR0_EL1.ELx: 0b0001 AArch64, 0b0010 AArch64 and AArch32, and for EL2/EL3 0b0000 not
# implemented (EL0 and EL1 always are); every other value is reserved and decodes as such.
_EL01_SUPPORT = {1: "AArch64 only", 2: "AArch64 and AArch32"}
_EL23_SUPPORT = {0: "not implemented", **_EL01_SUPPORT}

HCR_EL2 = [
    F("VM", 0, doc="stage 2 translation for EL1&0 enabled",
      values={0: "no stage 2 (EL1 runs as a host, not a guest)", 1: "stage 2 translation on"}),
    F("SWIO", 1, doc="set/way invalidation override"),
    F("PTW", 2, doc="protected table walk"),
    F("FMO", 3, doc="physical FIQs routed to EL2"),
    F("IMO", 4, doc="physical IRQs routed to EL2"),
    F("AMO", 5, doc="physical SErrors routed to EL2"),
    F("VF", 6, doc="virtual FIQ pending"),
    F("VI", 7, doc="virtual IRQ pending"),
    F("VSE", 8, doc="virtual SError pending"),
    F("FB", 9, doc="force broadcast of TLB/cache maintenance"),
    F("BSU", 11, 10, doc="barrier shareability upgrade",
      values={0: "no effect", 1: "Inner Shareable", 2: "Outer Shareable", 3: "Full system"}),
    F("DC", 12, doc="default cacheability (stage 1 off treated as cacheable)"),
    F("TWI", 13, doc="trap WFI to EL2"),
    F("TWE", 14, doc="trap WFE to EL2"),
    F("TID0", 15, doc="trap ID group 0"),
    F("TID1", 16, doc="trap ID group 1"),
    F("TID2", 17, doc="trap ID group 2 (cache ID registers)"),
    F("TID3", 18, doc="trap ID group 3 (ID_AA64* registers)"),
    F("TSC", 19, doc="trap SMC to EL2"),
    F("TIDCP", 20, doc="trap IMPLEMENTATION DEFINED system registers"),
    F("TACR", 21, doc="trap ACTLR_EL1 accesses"),
    F("TSW", 22, doc="trap data cache set/way instructions"),
    F("TPCP", 23, doc="trap cache maintenance to PoC/PoP"),
    F("TPU", 24, doc="trap cache maintenance to PoU"),
    F("TTLB", 25, doc="trap TLB maintenance"),
    F("TVM", 26, doc="trap writes to EL1 virtual memory control registers"),
    F("TGE", 27, doc="trap general exceptions: EL0 runs as a host under EL2"),
    F("TDZ", 28, doc="trap DC ZVA"),
    F("HCD", 29, doc="HVC instruction disabled"),
    F("TRVM", 30, doc="trap reads of EL1 virtual memory control registers"),
    F("RW", 31, doc="EL1 is AArch64 (0: AArch32)"),
    F("CD", 32, doc="stage 2 data access cacheability disable"),
    F("ID", 33, doc="stage 2 instruction access cacheability disable"),
    F("E2H", 34, doc="EL2 host (VHE): EL2 runs a host kernel",
      values={0: "non-VHE: the kernel runs at EL1, EL2 apart", 1: "VHE: the kernel runs at EL2"}),
    F("TLOR", 35, doc="trap LOR registers"),
    F("TERR", 36, doc="trap error record accesses"),
    F("TEA", 37, doc="route synchronous external aborts to EL2"),
    F("MIOCNCE", 38, doc="mismatched inner/outer cacheable non-coherency enable"),
    F("APK", 40, doc="pointer authentication key registers not trapped"),
    F("API", 41, doc="pointer authentication instructions not trapped"),
    F("NV", 42, doc="nested virtualization"),
    F("NV1", 43, doc="nested virtualization, EL1 registers"),
    F("AT", 44, doc="trap AT S1E1* instructions"),
    F("NV2", 45, doc="enhanced nested virtualization"),
    F("FWB", 46, doc="stage 2 forced write-back"),
    F("FIEN", 47, doc="fault injection enable"),
    F("TID4", 49, doc="trap ID group 4"),
    F("TICAB", 50, doc="trap IC IALLUIS"),
    F("AMVOFFEN", 51, doc="activity monitors virtual offsets enable"),
    F("TOCU", 52, doc="trap cache maintenance to PoU"),
    F("EnSCXT", 53, doc="SCXTNUM_ELx accessible"),
    F("TTLBIS", 54, doc="trap TLB maintenance, Inner Shareable"),
    F("TTLBOS", 55, doc="trap TLB maintenance, Outer Shareable"),
    F("ATA", 56, doc="allocation tag access"),
    F("DCT", 57, doc="default cacheability tagging"),
    F("TID5", 58, doc="trap ID group 5"),
    F("TWEDEn", 59, doc="TWE delay enable"),
    F("TWEDEL", 63, 60, doc="TWE delay"),
]

SCTLR_EL1 = [
    F("M", 0, doc="stage 1 MMU enabled for EL1&0", values={0: "EL1&0 MMU off", 1: "EL1&0 MMU on"}),
    F("A", 1, doc="alignment checking"),
    F("C", 2, doc="data caches enabled"), F("SA", 3, doc="SP alignment check at EL1"),
    F("SA0", 4, doc="SP alignment check at EL0"), F("CP15BEN", 5), F("nAA", 6), F("ITD", 7), F("SED", 8),
    F("UMA", 9, doc="EL0 may access DAIF"), F("EnRCTX", 10),
    F("EOS", 11, doc="exception exit is context synchronizing"),
    F("I", 12, doc="instruction caches enabled"), F("EnDB", 13), F("DZE", 14, doc="EL0 may use DC ZVA"),
    F("UCT", 15, doc="EL0 may read CTR_EL0"), F("nTWI", 16, doc="WFI at EL0 not trapped"),
    F("nTWE", 18, doc="WFE at EL0 not trapped"), F("WXN", 19, doc="writable implies execute-never"),
    F("TSCXT", 20), F("IESB", 21), F("EIS", 22, doc="exception entry is context synchronizing"),
    F("SPAN", 23, doc="PAN not set on exception to EL1 (when 1)"), F("E0E", 24, doc="EL0 big-endian"),
    F("EE", 25, doc="EL1 big-endian"), F("UCI", 26), F("EnDA", 27), F("nTLSMD", 28), F("LSMAOE", 29),
    F("EnIB", 30), F("EnIA", 31), F("BT0", 35), F("BT1", 36), F("ITFSB", 37),
    F("TCF0", 39, 38, values={0: "tag faults ignored", 1: "synchronous", 2: "asynchronous", 3: "asymmetric"}),
    F("TCF", 41, 40, values={0: "tag faults ignored", 1: "synchronous", 2: "asynchronous", 3: "asymmetric"}),
    F("ATA0", 42), F("ATA", 43), F("DSSBS", 44), F("EPAN", 57),
]

SCTLR_EL2 = [
    F("M", 0, doc="MMU enabled for the EL2 regime (0: EL2 addresses are physical)", reset=0,
      values={0: "EL2 MMU off (EL2 addresses are physical)", 1: "EL2 MMU on (TTBR0_EL2 translates)"}),
    F("A", 1, doc="alignment checking"),
    F("C", 2, doc="data caches enabled", reset=0,
      values={0: "EL2 data accesses Non-cacheable", 1: "EL2 data caches on"}),
    F("SA", 3, doc="SP alignment check"), F("nAA", 6), F("EOS", 11),
    F("I", 12, doc="instruction caches enabled", reset=0,
      values={0: "EL2 instruction fetches Non-cacheable", 1: "EL2 instruction caches on"}),
    F("EnDB", 13), F("WXN", 19, doc="writable implies execute-never"), F("IESB", 21), F("EIS", 22),
    F("EE", 25, doc="EL2 big-endian"), F("EnDA", 27), F("EnIB", 30), F("EnIA", 31), F("BT", 36),
    F("ITFSB", 37), F("TCF", 41, 40, values={0: "tag faults ignored", 1: "synchronous", 2: "asynchronous",
                                             3: "asymmetric"}),
    F("ATA", 43), F("DSSBS", 44),
]

TCR_EL1 = [
    F("T0SZ", 5, 0, doc="TTBR0 region is 2^(64-T0SZ) bytes"), F("EPD0", 7, doc="TTBR0 walks disabled"),
    F("IRGN0", 9, 8, values=_RGN), F("ORGN0", 11, 10, values=_RGN), F("SH0", 13, 12, values=_SH),
    F("TG0", 15, 14, doc="TTBR0 granule", values=_TG0),
    F("T1SZ", 21, 16, doc="TTBR1 region is 2^(64-T1SZ) bytes"), F("A1", 22, doc="ASID from TTBR1 (else TTBR0)"),
    F("EPD1", 23, doc="TTBR1 walks disabled"), F("IRGN1", 25, 24, values=_RGN), F("ORGN1", 27, 26, values=_RGN),
    F("SH1", 29, 28, values=_SH), F("TG1", 31, 30, doc="TTBR1 granule", values=_TG1),
    F("IPS", 34, 32, doc="intermediate physical address size", values=_PS), F("AS", 36, doc="16-bit ASID"),
    F("TBI0", 37, doc="top byte ignored, TTBR0"), F("TBI1", 38, doc="top byte ignored, TTBR1"),
    F("HA", 39, doc="hardware access flag"), F("HD", 40, doc="hardware dirty state"),
    F("HPD0", 41), F("HPD1", 42), F("TBID0", 51), F("TBID1", 52), F("NFD0", 53), F("NFD1", 54),
    F("E0PD0", 55), F("E0PD1", 56), F("TCMA0", 57), F("TCMA1", 58),
    F("DS", 59, doc="52-bit output with 4K/16K (LPA2)"),
]

TCR_EL2 = [
    F("T0SZ", 5, 0, doc="region is 2^(64-T0SZ) bytes"), F("IRGN0", 9, 8, values=_RGN),
    F("ORGN0", 11, 10, values=_RGN), F("SH0", 13, 12, values=_SH), F("TG0", 15, 14, values=_TG0),
    F("PS", 18, 16, doc="physical address size", values=_PS), F("TBI", 20, doc="top byte ignored"),
    F("HA", 21), F("HD", 22), F("HPD", 24), F("DS", 32),
]

VTCR_EL2 = [
    F("T0SZ", 5, 0, doc="IPA space is 2^(64-T0SZ) bytes"),
    F("SL0", 7, 6, doc="stage 2 start level (meaning depends on TG0)"),
    F("IRGN0", 9, 8, values=_RGN), F("ORGN0", 11, 10, values=_RGN), F("SH0", 13, 12, values=_SH),
    F("TG0", 15, 14, values=_TG0), F("PS", 18, 16, doc="physical address size", values=_PS),
    F("VS", 19, doc="16-bit VMID"), F("HA", 21), F("HD", 22), F("NSW", 29), F("NSA", 30),
    F("DS", 32), F("SL2", 33),
]

CPTR_EL2 = [
    F("TZ", 8, doc="trap SVE to EL2"), F("TFP", 10, doc="trap FP/SIMD to EL2"),
    F("TSM", 12, doc="trap SME to EL2"), F("TTA", 20, doc="trap trace registers"),
    F("TAM", 30, doc="trap activity monitors"), F("TCPAC", 31, doc="trap CPACR_EL1 accesses"),
]

MDCR_EL2 = [
    F("HPMN", 4, 0, doc="event counters accessible from EL1 and EL0"), F("TPMCR", 5, doc="trap PMCR_EL0"),
    F("TPM", 6, doc="trap PMU registers"), F("HPME", 7, doc="EL2 event counters enabled"),
    F("TDE", 8, doc="route debug exceptions to EL2"), F("TDA", 9, doc="trap debug register accesses"),
    F("TDOSA", 10, doc="trap OS-related debug registers"), F("TDRA", 11, doc="trap debug ROM address"),
    F("E2PB", 13, 12), F("TPMS", 14), F("HPMD", 17, doc="EL2 event counting prohibited"),
    F("TTRF", 19), F("HCCD", 23), F("HLP", 26), F("TDCC", 27), F("MTPME", 28),
]

CNTHCTL_EL2 = [
    F("EL1PCTEN", 0, doc="EL1/EL0 may read the physical counter"),
    F("EL1PCEN", 1, doc="EL1/EL0 may use the physical timer"),
    F("EVNTEN", 2, doc="event stream enabled"), F("EVNTDIR", 3), F("EVNTI", 7, 4, doc="event stream bit"),
    F("ECV", 12), F("EL1TVT", 13), F("EL1TVCT", 14), F("EL1NVPCT", 15), F("EL1NVVCT", 16), F("EVNTIS", 17),
]

ID_AA64PFR0_EL1 = [
    F("EL0", 3, 0, values=_EL01_SUPPORT), F("EL1", 7, 4, values=_EL01_SUPPORT),
    F("EL2", 11, 8, values=_EL23_SUPPORT), F("EL3", 15, 12, values=_EL23_SUPPORT),
    F("FP", 19, 16, values={0: "implemented", 1: "implemented with half precision", 0xF: "not implemented"}),
    F("AdvSIMD", 23, 20, values={0: "implemented", 1: "implemented with half precision", 0xF: "not implemented"}),
    F("GIC", 27, 24, values={0: "no system register interface", 1: "GICv3/v4 system registers",
                             3: "GICv4.1 system registers"}),
    F("RAS", 31, 28), F("SVE", 35, 32), F("SEL2", 39, 36), F("MPAM", 43, 40), F("AMU", 47, 44),
    F("DIT", 51, 48), F("RME", 55, 52), F("CSV2", 59, 56), F("CSV3", 63, 60),
]

ID_AA64MMFR0_EL1 = [
    F("PARange", 3, 0, values=_PS), F("ASIDBits", 7, 4, values={0: "8 bits", 2: "16 bits"}),
    F("BigEnd", 11, 8), F("SNSMem", 15, 12), F("BigEndEL0", 19, 16),
    F("TGran16", 23, 20, values={0: "16KB not supported", 1: "16KB supported", 2: "16KB with 52-bit"}),
    F("TGran64", 27, 24, values={0: "64KB supported", 0xF: "64KB not supported"}),
    F("TGran4", 31, 28, values={0: "4KB supported", 1: "4KB with 52-bit", 0xF: "4KB not supported"}),
    F("TGran16_2", 35, 32), F("TGran64_2", 39, 36), F("TGran4_2", 43, 40), F("ExS", 47, 44),
    F("FGT", 59, 56), F("ECV", 63, 60),
]

ID_AA64MMFR1_EL1 = [
    F("HAFDBS", 3, 0, values={0: "no hardware AF/dirty", 1: "hardware access flag", 2: "hardware AF and dirty"}),
    F("VMIDBits", 7, 4, values={0: "8 bits", 2: "16 bits"}), F("VH", 11, 8, values={0: "no VHE", 1: "VHE"}),
    F("HPDS", 15, 12), F("LO", 19, 16), F("PAN", 23, 20), F("SpecSEI", 27, 24), F("XNX", 31, 28),
    F("TWED", 35, 32), F("ETS", 39, 36), F("HCX", 43, 40), F("AFP", 47, 44), F("nTLBPA", 51, 48),
    F("TIDCP1", 55, 52), F("CMOW", 59, 56), F("ECBHB", 63, 60),
]

MPIDR_EL1 = [F("Aff0", 7, 0), F("Aff1", 15, 8), F("Aff2", 23, 16), F("MT", 24), F("U", 30, doc="uniprocessor"),
             F("Aff3", 39, 32)]
MIDR_EL1 = [F("Revision", 3, 0), F("PartNum", 15, 4), F("Architecture", 19, 16), F("Variant", 23, 20),
            F("Implementer", 31, 24, values={0x41: "Arm", 0x51: "Qualcomm", 0x61: "Apple", 0x43: "Cavium"})]
TTBR = [F("CnP", 0), F("BADDR", 47, 1, doc="table base address (bits [47:1] of it)", address=("PA", 1)),
        F("ASID", 63, 48)]
VTTBR_EL2 = [F("CnP", 0), F("BADDR", 47, 1, doc="stage 2 table base address (bits [47:1] of it)", address=("PA", 1)),
             F("VMID", 63, 48)]
HPFAR_EL2 = [F("FIPA", 43, 4, doc="faulting IPA bits [51:12]", address=("IPA", 12)), F("NS", 63)]
CURRENTEL = [F("EL", 3, 2, values={0: "EL0", 1: "EL1", 2: "EL2", 3: "EL3"})]
CPACR_EL1 = [F("ZEN", 17, 16), F("FPEN", 21, 20, values={0: "trapped at EL1 and EL0", 1: "trapped at EL0",
                                                          2: "trapped at EL1 and EL0", 3: "not trapped"}),
             F("SMEN", 25, 24), F("TTA", 28)]

TABLES = {
    "HCR_EL2": HCR_EL2, "SCTLR_EL1": SCTLR_EL1, "SCTLR_EL2": SCTLR_EL2, "TCR_EL1": TCR_EL1, "TCR_EL2": TCR_EL2,
    "VTCR_EL2": VTCR_EL2, "CPTR_EL2": CPTR_EL2, "MDCR_EL2": MDCR_EL2, "CNTHCTL_EL2": CNTHCTL_EL2,
    "ID_AA64PFR0_EL1": ID_AA64PFR0_EL1, "ID_AA64MMFR0_EL1": ID_AA64MMFR0_EL1,
    "ID_AA64MMFR1_EL1": ID_AA64MMFR1_EL1, "MPIDR_EL1": MPIDR_EL1, "MIDR_EL1": MIDR_EL1,
    "TTBR0_EL1": TTBR, "TTBR1_EL1": TTBR, "TTBR0_EL2": TTBR, "VTTBR_EL2": VTTBR_EL2, "HPFAR_EL2": HPFAR_EL2,
    "CurrentEL": CURRENTEL, "CPACR_EL1": CPACR_EL1,
}


def field(value: int, table: list, name: str) -> int:
    """The value of field `name` of a register whose layout is `table` (KeyError: no such field)."""
    for f in table:
        if f.name == name:
            return (value >> f.lo) & ((1 << f.width) - 1)
    raise KeyError(name)


def mmu_enabled(sctlr: int) -> bool:
    """SCTLR_EL1.M / SCTLR_EL2.M: stage 1 translation on for that regime (bit 0 in both)."""
    return bool(field(sctlr, SCTLR_EL2, "M"))


def stage2_enabled(hcr_el2: int) -> bool:
    """HCR_EL2.VM: stage 2 translation on for the EL1&0 regime."""
    return bool(field(hcr_el2, HCR_EL2, "VM"))


def walks_disabled(tcr_el1: int, upper: bool) -> bool:
    """TCR_EL1.EPD1 (upper, TTBR1) or EPD0 (TTBR0): table walks through that TTBR disabled."""
    return bool(field(tcr_el1, TCR_EL1, "EPD1" if upper else "EPD0"))


def smc_traps_to_el2(hcr_el2: int) -> bool:
    """HCR_EL2.TSC: an SMC executed at EL1 is trapped to EL2 (as EC 0x17) instead of going to EL3."""
    return bool(field(hcr_el2, HCR_EL2, "TSC"))

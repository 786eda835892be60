"""What a translation regime is and what translating an address in it gave: typed records the live
layer fills from the registers and arch/pagetable's walker, and the commands format.

A Regime names the registers that define it (TTBRn/TCR/SCTLR/MAIR for stage 1, VTTBR/VTCR/HCR for
stage 2), its geometry, whether the MMU walks at all and why not. A guest's two-stage regime is a
stage 1 Regime whose `stage2` is the stage 2 Regime that translates its table and output addresses.
"""

from dataclasses import dataclass, field

from gdb_rkvm.arch.pagetable import Geometry, Mapping, SharedTable, Walk, table_base

LABELS = {"el1": "EL1&0", "el2": "EL2", "stage2": "stage 2"}


@dataclass(frozen=True)
class Regime:
    """A translation regime as vCPU registers define it at one stop."""

    name: str                          # el1 | el2 | stage2 (a guest's stage 1 is el1 with stage2 set)
    stage: int                         # 1 or 2
    registers: dict = field(default_factory=dict)   # name -> value, the registers read
    mmu_on: bool = True                # SCTLR_ELx.M (stage 1) or HCR_EL2.VM (stage 2)
    table_register: str | None = None  # TTBR0_EL1, TTBR1_EL1, TTBR0_EL2, VTTBR_EL2; None: no walk
    geometry: Geometry | None = None   # from TCR_ELx / VTCR_EL2; None when there is no walk
    mair: int | None = None            # MAIR_ELx for a stage 1 leaf's memory type
    disabled: str | None = None        # why addresses are not walked (MMU off...): then VA = PA
    stage2: "Regime | None" = None     # the stage 2 under a guest's stage 1 (issue 16)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def table_address(self) -> int | None:
        """The start-level table's PA (the table register without ASID/VMID and CnP)."""
        if self.table_register is None or self.geometry is None:
            return None
        return table_base(self.registers[self.table_register], self.geometry)


@dataclass(frozen=True)
class Translation:
    """`va` translated in `regime`: the walk, or why there was none (walk None, `note` says)."""

    va: int
    regime: Regime
    walk: Walk | None
    pa: int | None
    note: str | None = None
    fault: str | None = None       # the walk's fault, or why `va` is no address in this regime

    @property
    def ok(self) -> bool:
        return self.pa is not None and not self.fault

    @property
    def steps(self) -> list:
        return self.walk.steps if self.walk else []

    def to_json(self) -> dict:
        """The keys `rkvm walk --json` has always printed."""
        if self.walk is None:
            return {"va": self.va, "pa": self.pa, "regime": self.regime.label, "note": self.note, "steps": [],
                    "fault": self.fault}
        out = self.walk.to_dict()
        out.update(va=self.va, pa=self.pa, table_register=self.regime.table_register,
                   table_base=self.regime.table_address, regime=self.regime.label, note=self.note)
        return out


@dataclass(frozen=True)
class AddressMap:
    """Every mapped range under one TTBR of the EL1&0 regime, coalesced, and what the traversal spent."""

    half: str                  # ttbr0 | ttbr1
    ttbr: int
    granule: int
    ia_bits: int
    mappings: list[Mapping]
    problems: list[str]
    tables_read: int
    tables_total: int
    truncated: str | None
    traversal: dict            # pagetable.Budget.to_dict()
    shared_tables: list[SharedTable]   # the first MAX_SHARED_SHOWN
    shared_total: int

    def to_json(self) -> dict:
        return {"half": self.half, "ttbr": self.ttbr, "granule": self.granule, "ia_bits": self.ia_bits,
                "mappings": [m.to_dict() for m in self.mappings], "problems": self.problems,
                "tables_read": self.tables_read, "tables_total": self.tables_total, "truncated": self.truncated,
                "traversal": self.traversal, "shared_tables": [s.to_dict() for s in self.shared_tables],
                "shared_total": self.shared_total}

"""What a translation regime is and what translating an address in it gave: typed records the live
layer fills from the registers and arch/pagetable's walker, and the commands format.

A Regime names the registers that define it (TTBRn/TCR/SCTLR/MAIR for stage 1, VTTBR/VTCR/HCR for
stage 2), its geometry, whether the MMU walks at all and why not. A guest's two-stage regime is a
stage 1 Regime whose `stage2` is the stage 2 Regime that translates its table and output addresses.
"""

from dataclasses import dataclass, field

from gdb_rkvm.arch.guest_map import GuestRange
from gdb_rkvm.arch.pagetable import Geometry, Mapping, SharedTable, Walk, table_base
from gdb_rkvm.arch.two_stage import GuestWalk, Stage1Regs, Stage2Regs, Stage2Walk

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
    source: str | None = None          # where the registers came from (live, a saved vCPU, the user)
    pa_range: int | None = None        # ID_AA64MMFR0_EL1.PARange when known (stage 2 output size)

    @property
    def label(self) -> str:
        if self.stage2 is not None:
            return "guest EL1&0 + stage 2"
        return LABELS.get(self.name, self.name)

    def stage1_regs(self) -> Stage1Regs:
        """A guest stage 1 regime's registers as the two-stage walker takes them."""
        r = self.registers
        return Stage1Regs(r["TTBR0_EL1"], r["TTBR1_EL1"], r["TCR_EL1"], r["SCTLR_EL1"], r.get("MAIR_EL1"))

    def stage2_regs(self) -> Stage2Regs:
        """A stage 2 regime's VTTBR_EL2/VTCR_EL2 as the two-stage walker takes them."""
        return Stage2Regs(self.registers["VTTBR_EL2"], self.registers["VTCR_EL2"], self.pa_range)

    def to_json(self) -> dict:
        out = {"regime": self.label, "registers": self.registers, "source": self.source,
               "table_register": self.table_register, "table_base": self.table_address}
        if self.stage2 is not None:
            out["stage2_regime"] = self.stage2.to_json()
        return out

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


@dataclass(frozen=True)
class GuestTranslation:
    """An IPA through stage 2 (walk a Stage2Walk) or a guest VA through both stages (a GuestWalk),
    in `regime` (a stage2 Regime, or a guest stage 1 Regime whose `stage2` is set), on `cpu`."""

    address: int
    regime: Regime
    walk: GuestWalk | Stage2Walk
    cpu: int | None = None

    @property
    def is_guest(self) -> bool:
        return isinstance(self.walk, GuestWalk)

    def to_json(self) -> dict:
        return {**self.walk.to_dict(), "cpu": self.cpu, **self.regime.to_json()}


@dataclass(frozen=True)
class GuestMap:
    """`rkvm vmmap --guest`/`--stage 2`: the stage 2 map (IPA -> PA ranges) and, for --guest, the
    guest's stage 1 map (its tables read at IPAs) cut into pieces each with VA, IPA and PA."""

    regime: Regime                      # a stage2 Regime, or a guest stage 1 Regime with stage2 set
    stage2: AddressMap
    stage1: AddressMap | None = None
    pieces: list[GuestRange] = field(default_factory=list)
    pieces_truncated: bool = False
    cpu: int | None = None

    def to_json(self) -> dict:
        out = {"cpu": self.cpu, **self.regime.to_json(), "stage2_map": self.stage2.to_json()}
        if self.stage1 is not None:
            out.update(stage1_map=self.stage1.to_json(), ranges=[p.to_dict() for p in self.pieces],
                       ranges_truncated=self.pieces_truncated)
        return out

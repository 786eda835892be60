"""The snapshot `rkvm snapshot --json` writes inside GDB and `rkvm triage`'s rules read on the host:
typed records both sides share. model/snapshot.schema.json is generated from these classes
(`python -m gdb_rkvm.model.snapshot > gdb_rkvm/model/snapshot.schema.json`); a unit test fails when
the two disagree. Addresses and register values are JSON integers; dictionary keys that are numbers
(CPU numbers, VBAR_EL2 values) are strings: decimal for CPUs, 0x-hex for addresses.
"""

import json
from dataclasses import dataclass, field, fields

from gdb_rkvm.model import records
from gdb_rkvm.model.world import (CpuWorld, GuestExitRecord, GuestModule, GuestState,  # noqa: F401  the schema's
                                  HostSaveSummary, VbarOrigin)  # $defs name every record here


def _compact(record, keep: tuple = ()) -> dict:
    """Fields by name, without the optional ones that are None (absent in the JSON, as before records)."""
    return {f.name: records.to_json(getattr(record, f.name)) for f in fields(record)
            if getattr(record, f.name) is not None or f.name in keep}


@dataclass(frozen=True)
class CpuSummary:
    """One row of `rkvm cpus`: EL, PC, VBAR_EL2 and what it points at, SP_EL2."""

    cpu: int
    el: int
    mode: str
    pc: int
    pc_symbol: str | None
    vbar_el2: int | None
    vbar_el2_kind: str | None          # model/vbar_el2 classify(): rkvm-stub, hyp-stub, ram, not-ram, unset...
    vbar_el2_points_at: str | None
    vbar_el2_symbol: str | None
    sp_el2: int | None


@dataclass(frozen=True)
class Register:
    """One system register of `rkvm el`: its value (None if unreadable) and what it says."""

    value: int | None
    summary: str | None = None
    explain: list[str] | None = None
    fields: list[dict] | None = None   # arch/fields Field.to_dict() of each decoded field
    symbol: str | None = None
    insn: str | None = None            # ELR_EL2 taken at EL2: the instruction at it

    def to_json(self) -> dict:
        return _compact(self, keep=("value",))


@dataclass(frozen=True)
class ElPicture:
    """Everything `rkvm el` shows for one CPU."""

    cpu: int
    el: int
    mode: str
    cpsr: int
    pc: int
    pc_symbol: str | None
    registers: dict[str, Register]
    hcr_el2_set: str | None
    el2_mmu_on: bool | None
    vbar_el2_points_at: str | None
    world: CpuWorld | None = None      # `rkvm el` only (the snapshot has it per CPU)

    def register(self, name: str) -> int | None:
        """The value of register `name`, None when absent or unreadable."""
        r = self.registers.get(name)
        return r.value if r else None


@dataclass(frozen=True)
class CpuState:
    """One CPU in the snapshot; a part that could not be read is absent (the snapshot's problems say why)."""

    cpu: int
    summary: CpuSummary | None = None
    el: ElPicture | None = None
    backtrace: list[str] | None = None
    world: CpuWorld | None = None       # host or guest, and the stub's host save area

    def to_json(self) -> dict:
        return _compact(self)

    def register(self, name: str) -> int | None:
        return self.el.register(name) if self.el else None


@dataclass(frozen=True)
class StubFault:
    """The rkvm stub's fault record of one CPU (docs/hvc-abi.md)."""

    count: int
    esr: int
    elr: int
    far: int
    spsr: int
    vector: int
    x0: int
    mpidr: int


@dataclass(frozen=True)
class StubCpuRecord:
    """The rkvm stub's per-CPU slot: counters, the SP_EL2 it set, its fault record."""

    hvc_count: int
    ping_count: int
    stack_top: int
    fault: StubFault | None


@dataclass(frozen=True)
class StubState:
    """The rkvm stub page: where it is, and each CPU's slot (None: no slot for that CPU)."""

    pa: int
    records: dict[str, StubCpuRecord | None]
    slots: int | None = None

    def record(self, cpu: int) -> StubCpuRecord | None:
        return self.records.get(str(cpu))


@dataclass(frozen=True)
class ModuleState:
    """rkvm.ko's `rkvm_debug` variables (None: unreadable)."""

    mode: int | None
    stub_pa: int | None
    vbar_written: int | None
    prev_vectors_pa: int | None
    installed_mask: int | None
    last_event: int | None


@dataclass(frozen=True)
class Snapshot:
    """Everything `rkvm triage` records about a stopped guest."""

    cpus: list[CpuState]
    vbar_el2: dict[str, int]                     # CPU -> VBAR_EL2
    vbar_origins: dict[str, VbarOrigin | None]   # VBAR_EL2 hex -> origin
    hyp_stub_pa: int | None
    rkvm_stub_pas: list[int]
    ram: list[list[int]]                         # [start, end) pairs
    stub: StubState | None
    el2_code_uses_stack: dict[str, bool | None]  # VBAR_EL2 hex -> does the code there use sp
    module: ModuleState | None
    rkvm_stub_park: int | None
    problems: list[str]
    partial: bool
    psci: dict | None = None                     # live/psci.facts(): conduit, per-CPU landing, calls
    el2_copy: dict[str, dict | None] = field(default_factory=dict)   # VBAR_EL2 hex -> el2lint.compare
    kernel_va_symbols: dict[str, str | None] = field(default_factory=dict)
    guest: GuestState | None = None              # the vCPU that runs or ran last, and rkvm.ko's guest

    def vbars(self) -> dict[int, int]:
        return {int(k): v for k, v in self.vbar_el2.items()}

    def cpu(self, n: int) -> CpuState | None:
        return next((c for c in self.cpus if c.cpu == n), None)

    def stub_record(self, cpu: int) -> StubCpuRecord | None:
        return self.stub.record(cpu) if self.stub else None

    @classmethod
    def from_json(cls, data) -> "Snapshot":
        """The snapshot in `data` (parsed JSON), every field type-checked (RkvmError names a bad one)."""
        return records.parse(cls, data, "snapshot")


def schema() -> dict:
    return records.json_schema(Snapshot, "rkvm snapshot")


if __name__ == "__main__":
    print(json.dumps(schema(), indent=2))

"""The snapshot's JSON Schema against its record types, and snapshots (hand-made, lab-shaped, broken)
against both: the committed schema is what the dataclasses generate, or this fails."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model import snapshot as snapmod
from gdb_rkvm.model.records import to_json
from gdb_rkvm.model.snapshot import Snapshot
from tests.unit import schema_subset
from tests.unit.test_triage_rules import HYP, STUB, cpu, records, snap

SCHEMA_FILE = Path(snapmod.__file__).with_name("snapshot.schema.json")
SCHEMA = json.loads(SCHEMA_FILE.read_text())


def test_committed_schema_is_what_the_dataclasses_generate():
    # regenerate with: python -m gdb_rkvm.model.snapshot > gdb_rkvm/model/snapshot.schema.json
    assert snapmod.schema() == SCHEMA


def test_schema_names_every_dataclass_field():
    import dataclasses
    for name, d in SCHEMA["$defs"].items():
        cls = getattr(snapmod, name)
        assert list(d["properties"]) == [f.name for f in dataclasses.fields(cls)], name


def lab_shaped() -> dict:
    """A snapshot as `rkvm snapshot --json` writes it on the lab (mode=nostack, CPU 1 parked), with the
    parts the rules do not type (psci, el2_copy) filled."""
    s = snap([cpu(0), cpu(1, el=2, pc=STUB + 0xD18, sym="rkvm_stub_park", sp_el2=0, esr=0x96000040)],
             stub_records=records(stack_top=0))
    s["cpus"][1]["el"]["registers"]["ELR_EL2"] = {"value": STUB + 0xB88, "symbol": "rkvm_stub_ping",
                                                  "insn": "stp x4, x5, [sp, #-0x10]!"}
    s["cpus"][0]["el"]["registers"]["SPSR_EL2"] = {
        "value": 0x3C5, "summary": "EL1h, DAIF masked", "explain": ["returns to EL1h"],
        "fields": [{"name": "M", "msb": 3, "lsb": 0, "value": 5, "meaning": "EL1h"}]}
    s["stub"]["records"]["1"]["fault"] = {"count": 1, "esr": 0x96000040, "elr": STUB + 0xB88,
                                          "far": 0xFFFFFFFFFFFFFFF0, "spsr": 0x3C9, "vector": 0x200,
                                          "x0": 0x524B0001, "mpidr": 0x80000001}
    s["stub"]["records"]["8"] = None
    s["stub"]["slots"] = 8
    s["module"] = {"mode": 3, "stub_pa": STUB, "vbar_written": STUB, "prev_vectors_pa": HYP,
                   "installed_mask": 3, "last_event": 1}
    s["psci"] = {"conduit": "smc", "cpus": {"0": {"lands": "EL3"}}, "calls": [], "watching": False}
    s["el2_copy"] = {f"{STUB:#x}": None}
    s["kernel_va_symbols"] = {"0xffff800080012340": None}
    s["vbar_origins"] = {f"{STUB:#x}": None}
    return s


def test_hand_made_and_lab_shaped_snapshots_are_valid():
    for s in (snap([cpu(0), cpu(1)], stub_records=records()), snap([cpu(0)]), lab_shaped()):
        assert schema_subset.errors(s, SCHEMA) == []
        assert to_json(Snapshot.from_json(s)) == s     # parsing keeps every field, and nothing else


def test_a_cpu_that_could_not_be_read_has_no_parts():
    s = snap([cpu(0)])
    s["cpus"].append({"cpu": 1})
    s["partial"], s["problems"] = True, ["CPU 1 summary: Remote connection closed"]
    assert schema_subset.errors(s, SCHEMA) == []
    assert Snapshot.from_json(s).cpu(1).summary is None


@pytest.mark.parametrize("break_it, where", [
    (lambda s: s["cpus"][0]["summary"].update(pc="0x40"), "snapshot.cpus[0].summary.pc"),
    (lambda s: s["cpus"][0]["summary"].pop("el"), "snapshot.cpus[0].summary"),
    (lambda s: s.update(renamed_key=1), "snapshot"),
    (lambda s: s["stub"]["records"]["0"].update(stack_top=None), "snapshot.stub.records.0.stack_top"),
    (lambda s: s.update(partial=0), "snapshot.partial"),
])
def test_broken_snapshots_fail_the_schema_and_the_parser(break_it, where):
    s = snap([cpu(0)], stub_records=records())
    break_it(s)
    assert schema_subset.errors(s, SCHEMA)
    with pytest.raises(RkvmError, match=where.replace("[", r"\[").replace("]", r"\]")):
        Snapshot.from_json(s)


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 3), st.none() | st.integers(0, 2**64 - 1)),
                min_size=1, max_size=4))
def test_property_records_round_trip_and_validate(spec):
    s = snap([cpu(n, pc=pc, el=el, sp_el2=sp) for n, (pc, el, sp) in enumerate(spec)], stub_records=records())
    assert schema_subset.errors(s, SCHEMA) == []
    assert to_json(Snapshot.from_json(json.loads(json.dumps(s)))) == s


def test_the_validator_refuses_keywords_it_does_not_know():
    with pytest.raises(ValueError):
        schema_subset.errors(1, {"type": "integer", "minimum": 0})

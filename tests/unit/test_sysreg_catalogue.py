"""gdb-rkvm's system register catalogue and field tables against Linux's arch/arm64/tools/sysreg,
the kernel's machine-readable copy of the Arm ARM's register descriptions: a wrong encoding, a
field at the wrong bits or a value the architecture does not define cannot land."""

import pytest

from gdb_rkvm.arch import fields, regfields, sysregs
from tests.unit.kernel_sysreg import parse, sysreg_text

KERNEL = parse(sysreg_text())
BOTH = sorted(n for n in KERNEL if n in sysregs.CATALOGUE)
TABLES = {name: table for name, table in regfields.TABLES.items() if name in KERNEL and KERNEL[name].fields}


def test_the_kernel_file_was_read():
    assert len(KERNEL) > 100 and "ID_AA64PFR0_EL1" in KERNEL and len(BOTH) > 20


@pytest.mark.parametrize("name", BOTH)
def test_encodings_agree(name):
    assert sysregs.CATALOGUE[name].encoding == KERNEL[name].encoding


def test_every_el2_register_the_kernel_knows_is_catalogued():
    missing = sorted(n for n in KERNEL if n.endswith("_EL2") and n not in sysregs.CATALOGUE)
    assert missing == []


def test_encodings_are_unique():
    encodings = [r.encoding for r in sysregs.CATALOGUE.values()]
    assert len(encodings) == len(set(encodings))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_field_positions_agree(name):
    kernel_fields = KERNEL[name].fields
    checked = 0
    for f in TABLES[name]:
        k = kernel_fields.get(f.name) or kernel_fields.get(f.name.upper())
        if k is None:
            continue
        assert (f.hi, f.lo) == (k.hi, k.lo), f"{name}.{f.name}: ours [{f.hi}:{f.lo}], kernel [{k.hi}:{k.lo}]"
        checked += 1
    assert checked, f"no field of {name} could be compared"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_enumerated_values_exist_in_the_architecture(name):
    kernel_fields = KERNEL[name].fields
    for f in TABLES[name]:
        k = kernel_fields.get(f.name) or kernel_fields.get(f.name.upper())
        if k is None or not k.values or not f.values:
            continue
        undefined = sorted(set(f.values) - set(k.values))
        assert not undefined, f"{name}.{f.name} labels values the architecture leaves reserved: {undefined}"


def test_reserved_el_support_value_decodes_as_reserved():
    (el0,) = [fv for fv in fields.decode_fields(0x3, regfields.ID_AA64PFR0_EL1) if fv.name == "EL0"]
    assert "reserved" in el0.meaning

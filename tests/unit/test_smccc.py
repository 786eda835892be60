"""SMCCC function IDs and PSCI calls, against values from the SMC Calling Convention and PSCI specs
(the same numbers as Linux's include/uapi/linux/psci.h and include/linux/arm-smccc.h), and over all x0."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.arch import smccc

CASES = [
    (0x84000000, "PSCI", "PSCI_VERSION", False, 4),
    (0x84000002, "PSCI", "CPU_OFF", False, 4),
    (0x84000003, "PSCI", "CPU_ON", False, 4),
    (0xC4000003, "PSCI", "CPU_ON", True, 4),
    (0xC4000001, "PSCI", "CPU_SUSPEND", True, 4),
    (0x84000008, "PSCI", "SYSTEM_OFF", False, 4),
    (0x84000009, "PSCI", "SYSTEM_RESET", False, 4),
    (0x8400000A, "PSCI", "PSCI_FEATURES", False, 4),
    (0xC4000012, "PSCI", "SYSTEM_RESET2", True, 4),
    (0x80000000, "SMCCC", "SMCCC_VERSION", False, 0),
    (0x80000001, "SMCCC", "SMCCC_ARCH_FEATURES", False, 0),
    (0x80008000, "SMCCC", "SMCCC_ARCH_WORKAROUND_1", False, 0),
    (0x80007FFF, "SMCCC", "SMCCC_ARCH_WORKAROUND_2", False, 0),
    (0x84000050, "TRNG", "", False, 4),
    (0xC4000021, "SDEI", "", True, 4),
]


@pytest.mark.parametrize("x0,service,name,smc64,owner", CASES)
def test_known_function_ids(x0, service, name, smc64, owner):
    f = smccc.decode_function_id(x0)
    assert (f.service, f.name, f.smc64, f.owner, f.fast) == (service, name, smc64, owner, True)
    assert f.problem == ""


def test_upper_half_of_x0_is_ignored():
    assert smccc.decode_function_id(0xDEAD0000_84000000).name == "PSCI_VERSION"


def test_hyp_stub_and_rkvm_ids_are_not_smccc():
    for x0 in (0, 1, 2, 3, 0x524B0001, 0x7FFFFFFF):
        assert smccc.decode_function_id(x0) is None and smccc.decode_call(x0) is None


def test_psci_function_without_a_64_bit_form():
    # PSCI_VERSION has no SMC64 form: 0xC4000000 is a PSCI-range number but no function
    f = smccc.decode_function_id(0xC4000000)
    assert f.service == "PSCI" and f.name == "" and "SMC64" in f.label


def test_mbz_bits():
    assert smccc.decode_function_id(0x84010000).problem == ""            # bit 16: SVE hint (SMCCC 1.3)
    assert "[23:17]" in smccc.decode_function_id(0x84020000).problem


def test_owners():
    assert smccc.decode_function_id(0x82000010).owner_name == "SiP Service Calls"
    assert smccc.decode_function_id(0x86000000).owner_name == "Vendor Specific Hypervisor Service Calls"
    assert smccc.decode_function_id(0xB2000000).owner_name == "Trusted OS Calls"
    assert smccc.decode_function_id(0x88000000).owner_name == "Reserved"


def test_cpu_on_arguments():
    call = smccc.decode_call(0xC4000003, 0x101, 0x40a4_1234, 0x77)
    assert [a.name for a in call.arguments] == ["target_cpu", "entry_point_address", "context_id"]
    assert call.arguments[0].meaning == "MPIDR Aff3.Aff2.Aff1.Aff0 = 0.0.1.1"
    assert call.summary.startswith("PSCI CPU_ON(target_cpu=0x101 (MPIDR Aff3.Aff2.Aff1.Aff0 = 0.0.1.1), "
                                   "entry_point_address=0x40a41234")


def test_smc32_arguments_are_32_bit():
    call = smccc.decode_call(0x84000003, 0xFFFFFFFF_00000001, 0xFFFF_0000_4000_0000, 0)
    assert call.arguments[0].value == 1 and call.arguments[1].value == 0x40000000


def test_psci_features_names_the_function_asked_about():
    call = smccc.decode_call(0x8400000A, 0xC4000003)
    assert call.arguments[0].meaning == "PSCI CPU_ON"


def test_system_off_has_no_arguments():
    assert smccc.decode_call(0x84000008, 5, 6, 7).summary == "PSCI SYSTEM_OFF()"


def test_returns():
    ver = smccc.decode_function_id(0x84000000)
    assert smccc.psci_return(0x10001, ver) == "PSCI 1.1"
    assert smccc.psci_return((1 << 64) - 1) == "NOT_SUPPORTED"
    assert smccc.psci_return(0xFFFFFFFE) == "INVALID_PARAMETERS"
    assert smccc.psci_return(0) == "SUCCESS"
    assert "HVC_STUB_ERR" in smccc.psci_return(0xBADCA11)
    assert smccc.psci_return(1, smccc.decode_function_id(0x84000004)) == "OFF"
    assert not smccc.is_psci_result(0xBADCA11) and smccc.is_psci_result((1 << 64) - 3)


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_any_x0_decodes_without_raising(x0, x1, x2):
    f = smccc.decode_function_id(x0)
    if f is None:
        assert not x0 >> 31 & 1
        return
    assert f.value == x0 & 0xFFFFFFFF and 0 <= f.owner < 64 and 0 <= f.number <= 0xFFFF
    assert f.smc64 == bool(x0 >> 30 & 1)
    call = smccc.decode_call(x0, x1, x2, 0)
    assert call.summary.startswith(f.label)
    if not f.smc64:
        assert all(a.value < 1 << 32 for a in call.arguments)
    assert isinstance(smccc.psci_return(x1, f), str)

"""SMCCC function identifiers and PSCI calls: what an HVC or SMC asks for, from its registers.

Facts from Arm's "SMC Calling Convention" (SMCCC, Arm DEN 0028), section "Function Identifiers"
(W0: bit 31 fast/yielding call, bit 30 SMC32/HVC32 or SMC64/HVC64 convention, bits [29:24] owning
entity number, bits [23:17] must be zero in a fast call, bit 16 the SVE live-state hint (SMCCC v1.3),
bits [15:0] function number) and "Owning Entity Number" ranges; and from Arm's "Power State
Coordination Interface" (PSCI, Arm DEN 0022), "PSCI function IDs" and "Return error codes".
Pure: no GDB. decode_function_id()/decode_call() never raise.
"""

from dataclasses import dataclass, field

MASK32 = 0xFFFFFFFF

OWNERS = {
    0: "Arm Architecture Calls", 1: "CPU Service Calls", 2: "SiP Service Calls", 3: "OEM Service Calls",
    4: "Standard Secure Service Calls", 5: "Standard Hypervisor Service Calls",
    6: "Vendor Specific Hypervisor Service Calls", 7: "Vendor Specific EL3 Monitor Calls",
}
for _n in range(48, 50):
    OWNERS[_n] = "Trusted Application Calls"
for _n in range(50, 64):
    OWNERS[_n] = "Trusted OS Calls"

# Standard Secure Service Calls (owner 4): function-number ranges of the services (SMCCC).
STANDARD_SERVICES = ((0x00, 0x1F, "PSCI"), (0x20, 0x3F, "SDEI"), (0x40, 0x4F, "MM"), (0x50, 0x5F, "TRNG"),
                     (0x60, 0xFF, "FF-A"))

# Arm Architecture Calls (owner 0), SMC32 fast calls.
ARCH_CALLS = {0x0000: "SMCCC_VERSION", 0x0001: "SMCCC_ARCH_FEATURES", 0x0002: "SMCCC_ARCH_SOC_ID",
              0x3FFF: "SMCCC_ARCH_WORKAROUND_3", 0x7FFF: "SMCCC_ARCH_WORKAROUND_2",
              0x8000: "SMCCC_ARCH_WORKAROUND_1"}

# PSCI function number -> (name, argument names, SMC64 form exists). PSCI "Function definitions".
PSCI_FUNCTIONS = {
    0x00: ("PSCI_VERSION", (), False),
    0x01: ("CPU_SUSPEND", ("power_state", "entry_point_address", "context_id"), True),
    0x02: ("CPU_OFF", (), False),
    0x03: ("CPU_ON", ("target_cpu", "entry_point_address", "context_id"), True),
    0x04: ("AFFINITY_INFO", ("target_affinity", "lowest_affinity_level"), True),
    0x05: ("MIGRATE", ("target_cpu",), True),
    0x06: ("MIGRATE_INFO_TYPE", (), False),
    0x07: ("MIGRATE_INFO_UP_CPU", (), True),
    0x08: ("SYSTEM_OFF", (), False),
    0x09: ("SYSTEM_RESET", (), False),
    0x0A: ("PSCI_FEATURES", ("psci_func_id",), False),
    0x0B: ("CPU_FREEZE", (), False),
    0x0C: ("CPU_DEFAULT_SUSPEND", ("entry_point_address", "context_id"), True),
    0x0D: ("NODE_HW_STATE", ("target_cpu", "power_level"), True),
    0x0E: ("SYSTEM_SUSPEND", ("entry_point_address", "context_id"), True),
    0x0F: ("PSCI_SET_SUSPEND_MODE", ("mode",), False),
    0x10: ("PSCI_STAT_RESIDENCY", ("target_cpu", "power_state"), True),
    0x11: ("PSCI_STAT_COUNT", ("target_cpu", "power_state"), True),
    0x12: ("SYSTEM_RESET2", ("reset_type", "cookie"), True),
    0x13: ("MEM_PROTECT", ("enable",), False),
    0x14: ("MEM_PROTECT_CHECK_RANGE", ("base", "length"), True),
}

PSCI_RETURNS = {0: "SUCCESS", -1: "NOT_SUPPORTED", -2: "INVALID_PARAMETERS", -3: "DENIED", -4: "ALREADY_ON",
                -5: "ON_PENDING", -6: "INTERNAL_FAILURE", -7: "NOT_PRESENT", -8: "DISABLED",
                -9: "INVALID_ADDRESS"}

PSCI_VERSION_ID = 0x84000000
CPU_ON_32, CPU_ON_64 = 0x84000003, 0xC4000003
SYSTEM_OFF_ID, SYSTEM_RESET_ID = 0x84000008, 0x84000009


@dataclass(frozen=True)
class FunctionId:
    """W0 of an SMCCC call, field by field."""

    value: int
    fast: bool
    smc64: bool
    owner: int
    owner_name: str
    number: int
    service: str = ""        # PSCI, SDEI, TRNG... (Standard Secure Service ranges), "SMCCC" for owner 0
    name: str = ""           # PSCI_VERSION, CPU_ON, SMCCC_VERSION...; "" when not a known function
    problem: str = ""        # "bits [23:17] not zero": not a well-formed fast call

    @property
    def label(self) -> str:
        """'PSCI CPU_ON (SMC64)', 'SMCCC_VERSION', or 'SiP Service Calls fn 0x12 (SMC32)'."""
        conv = "SMC64" if self.smc64 else "SMC32"
        if self.name:
            return f"{self.service} {self.name}" if self.service and self.service != "SMCCC" else self.name
        what = f"{self.service} fn {self.number:#x}" if self.service else f"{self.owner_name} fn {self.number:#x}"
        return f"{what} ({conv})"


@dataclass(frozen=True)
class Argument:
    name: str
    value: int
    meaning: str = ""


@dataclass(frozen=True)
class Call:
    """An SMCCC call as its registers make it: function ID, named arguments, a one-line summary."""

    function: FunctionId
    arguments: tuple = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        args = ", ".join(f"{a.name}={a.value:#x}" + (f" ({a.meaning})" if a.meaning else "") for a in self.arguments)
        return f"{self.function.label}({args})"


def decode_function_id(x0: int) -> FunctionId | None:
    """W0 as an SMCCC function ID, or None if it is not a fast call (bit 31 clear): yielding calls
    share their numbers with the hyp-stub's and rkvm's own x0 values (0, 1, 0x524b0001...), so a
    small x0 is never read as SMCCC."""
    w0 = x0 & MASK32
    if not w0 >> 31:
        return None
    smc64 = bool(w0 >> 30 & 1)
    owner = w0 >> 24 & 0x3F
    number = w0 & 0xFFFF
    problem = "bits [23:17] are not zero" if w0 >> 17 & 0x7F else ""
    service, name = "", ""
    if owner == 0:
        service = "SMCCC"
        name = ARCH_CALLS.get(number, "") if not smc64 or number == 0x0002 else ""
    elif owner == 4:
        service = next((s for lo, hi, s in STANDARD_SERVICES if lo <= number <= hi), "")
        if service == "PSCI" and number in PSCI_FUNCTIONS:
            fname, _, has64 = PSCI_FUNCTIONS[number]
            name = fname if (not smc64 or has64) else ""
    return FunctionId(w0, True, smc64, owner, OWNERS.get(owner, "Reserved"), number, service, name, problem)


def _mpidr(value: int) -> str:
    aff = [(value >> s) & 0xFF for s in (32, 16, 8, 0)]
    return "MPIDR Aff3.Aff2.Aff1.Aff0 = " + ".".join(str(a) for a in aff)


def _power_state(value: int) -> str:
    kind = "powerdown" if value >> 16 & 1 else "standby"
    return f"StateID {value & 0xFFFF:#x}, {kind}, affinity level {value >> 24 & 3} (original format)"


def _meaning(fname: str, arg: str, value: int) -> str:
    if arg in ("target_cpu", "target_affinity"):
        return _mpidr(value)
    if arg == "power_state":
        return _power_state(value)
    if arg == "psci_func_id":
        fid = decode_function_id(value)
        return fid.label if fid and fid.name else ""
    if arg == "reset_type":
        return "vendor-specific" if value >> 31 & 1 else ("SYSTEM_WARM_RESET" if value == 0 else "reserved")
    return ""


def decode_call(x0: int, x1: int = 0, x2: int = 0, x3: int = 0) -> Call | None:
    """An SMCCC call from x0..x3, arguments named for the PSCI functions; None if x0 is not one.
    SMC32/HVC32 calls take 32-bit arguments: the upper halves of x1..x3 are ignored, as SMCCC says."""
    fid = decode_function_id(x0)
    if fid is None:
        return None
    regs = [x1, x2, x3] if fid.smc64 else [x1 & MASK32, x2 & MASK32, x3 & MASK32]
    args: tuple = ()
    if fid.service == "PSCI" and fid.name:
        names = PSCI_FUNCTIONS[fid.number][1]
        args = tuple(Argument(n, regs[i], _meaning(fid.name, n, regs[i])) for i, n in enumerate(names))
    elif fid.name == "SMCCC_ARCH_FEATURES":
        inner = decode_function_id(regs[0])
        args = (Argument("function_id", regs[0], inner.label if inner and inner.name else ""),)
    return Call(fid, args)


def psci_return(value: int, fid: FunctionId | None = None) -> str:
    """What a PSCI call's x0 on return means: SUCCESS, NOT_SUPPORTED..., the version for PSCI_VERSION,
    '0xbadca11 (the hyp-stub's HVC_STUB_ERR: not PSCI)'."""
    w = value & MASK32
    if fid is not None and fid.name == "PSCI_VERSION" and not w >> 31:
        return f"PSCI {w >> 16}.{w & 0xFFFF}"
    if w == 0xBADCA11:
        return "0xbadca11 (HVC_STUB_ERR: a Linux hyp-stub style handler, not PSCI)"
    signed = w - (1 << 32) if w >> 31 else w
    if fid is not None and fid.name == "AFFINITY_INFO" and signed in (0, 1, 2):
        return ("ON", "OFF", "ON_PENDING")[signed]
    if signed in PSCI_RETURNS:
        return PSCI_RETURNS[signed]
    return f"{w:#x}"


def is_psci(x0: int) -> bool:
    fid = decode_function_id(x0)
    return fid is not None and fid.service == "PSCI"


def is_psci_result(value: int) -> bool:
    """Whether x0 after a PSCI call is something PSCI returns (an error code, or 0 and small
    non-negative values): HVC_STUB_ERR (0xbadca11) and other stray values are not."""
    w = value & MASK32
    signed = w - (1 << 32) if w >> 31 else w
    return signed in PSCI_RETURNS or 0 <= signed < (1 << 31) and w != 0xBADCA11


# SMC #imm16 (A64): 1101 0100 000 imm16 000 11; HVC #imm16 the same with 10 in [1:0] (Arm ARM, "SMC", "HVC").
SMC_MASK, SMC_BITS, HVC_BITS = 0xFFE0001F, 0xD4000003, 0xD4000002


def conduit_instructions(code: bytes, base: int, bits: int = SMC_BITS) -> list[tuple[int, int]]:
    """(address, imm16) of every SMC (or, with bits=HVC_BITS, HVC) instruction in little-endian A64
    code starting at `base` (4-byte aligned words)."""
    out = []
    top = code[3::4]              # the most significant byte of each word: 0xd4 for both
    i = top.find(0xD4)
    while i != -1:
        word = int.from_bytes(code[4 * i:4 * i + 4], "little")
        if word & SMC_MASK == bits:
            out.append((base + 4 * i, word >> 5 & 0xFFFF))
        i = top.find(0xD4, i + 1)
    return out

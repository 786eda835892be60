"""Stage 2 fault autopsy: what a guest did, and what a VMM is expected to do about it, from ESR_EL2,
FAR_EL2 and HPFAR_EL2 (a data or instruction abort from EL1/EL0 taken to EL2).

Field meanings follow the Arm ARM's ESR_EL2 ISS encoding for Data Aborts and Instruction Aborts and
HPFAR_EL2. HPFAR_EL2.FIPA gives the faulting IPA's page for stage 2 translation, access flag and
address size faults and for any fault on a stage 1 table walk (S1PTW); for a stage 2 permission fault
outside a table walk it may be UNKNOWN (Linux's KVM resolves the IPA with AT S1E1R then). FAR_EL2
holds the guest's VA unless ISS.FnV says it is not valid. autopsy() never raises.
"""

from dataclasses import dataclass
from enum import Enum

from . import esr as esr_mod
from .fields import MASK64, bits
from .two_stage import GuestWalk

FSC_KINDS = {0b0000: "address size", 0b0001: "translation", 0b0010: "access flag", 0b0011: "permission"}


class VmmAction(str, Enum):
    """What a VMM does next, in the words `rkvm fault` prints."""

    EMULATE_MMIO = "emulate-mmio"            # a device access the VMM emulates, then skips the instruction
    DECODE_MMIO = "decode-mmio"              # a device access without a syndrome (ISV = 0)
    MAP_PAGE = "map-page"                    # guest RAM not (yet) mapped at stage 2
    MAP_TABLE_PAGE = "map-table-page"        # the guest's own page table page is not mapped (S1PTW)
    SET_ACCESS_FLAG = "set-access-flag"
    FIX_PERMISSION = "fix-permission"
    FIX_STAGE2 = "fix-stage2"                # address size: VTCR_EL2/VTTBR_EL2 or a descriptor is wrong
    INJECT_ABORT = "inject-abort"
    NOT_A_STAGE2_ABORT = "not-a-stage2-abort"


@dataclass(frozen=True)
class GuestAccess:
    """The access as ISS describes it when ESR_EL2.ISS.ISV = 1 (a single-register load or store)."""

    size: int                  # bytes, 1 << ISS.SAS
    register: str              # ISS.SRT as x<n>/w<n> (ISS.SF); 31 is the zero register
    srt: int
    sixty_four: bool           # ISS.SF
    sign_extend: bool          # ISS.SSE
    acquire_release: bool      # ISS.AR


@dataclass(frozen=True)
class Stage2Fault:
    esr: int
    far: int
    hpfar: int
    ec: int
    instruction: bool           # an instruction abort (fetch), else a data abort
    is_stage2_abort: bool       # EC 0x20/0x24: from EL1/EL0 (a guest), taken to EL2
    va: int | None              # FAR_EL2 when ISS.FnV = 0
    ipa_page: int               # HPFAR_EL2.FIPA << 12
    ipa: int                    # ipa_page | FAR_EL2[11:0] when that offset is known
    ipa_offset_known: bool
    ipa_reliable: bool          # False: a permission fault outside a table walk (HPFAR may be UNKNOWN)
    write: bool | None          # ISS.WnR (data aborts)
    access: GuestAccess | None  # when ISS.ISV = 1
    s1ptw: bool
    cache_maintenance: bool     # ISS.CM
    external: bool              # ISS.EA
    fsc: int
    kind: str                   # translation | access flag | permission | address size | external abort | other
    level: int | None
    status: str                 # the FSC in the Arm ARM's words
    in_guest_ram: bool | None   # None when no guest RAM ranges were given
    action: VmmAction
    advice: str
    walk: GuestWalk | None = None

    def what_the_guest_did(self) -> str:
        if not self.is_stage2_abort:
            return f"not a stage 2 abort from the guest (EC {self.ec:#04x} {esr_mod.ec_name(self.ec)})"
        where = f"IPA {self.ipa:#x}" if self.ipa_offset_known else f"IPA page {self.ipa_page:#x}"
        va = f"VA {self.va:#x} -> " if self.va is not None else "VA unknown (FnV) -> "
        if self.s1ptw:
            return f"{va}{where}: a stage 1 table fetch of the guest's own page tables"
        if self.instruction:
            return f"{va}{where}: an instruction fetch"
        rw = "write" if self.write else "read"
        if self.cache_maintenance:
            rw = "cache maintenance or AT instruction"
        if self.access:
            a = self.access
            sign = ", sign-extended" if a.sign_extend else ""
            ar = ", acquire/release" if a.acquire_release else ""
            return f"{va}{where}: {a.size}-byte {rw} {'of' if self.write else 'into'} {a.register}{sign}{ar}"
        return f"{va}{where}: a {rw} (no instruction syndrome, ISV = 0)"

    def fault_text(self) -> str:
        lvl = f" at level {self.level}" if self.level is not None else ""
        ptw = " during a stage 1 table walk (S1PTW)" if self.s1ptw else ""
        return f"stage 2 {self.kind} fault{lvl}{ptw} (FSC {self.fsc:#04x}: {self.status})"

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["action"] = self.action.value
        d["access"] = self.access.__dict__ if self.access else None
        d["walk"] = self.walk.to_dict() if self.walk else None
        d["what"], d["fault"] = self.what_the_guest_did(), self.fault_text()
        return d


def fault_kind(fsc: int) -> tuple[str, int | None]:
    """(kind, level) of a DFSC/IFSC."""
    level = esr_mod.fault_level(fsc)
    if fsc in (0b101001, 0b101011):
        return ("address size" if fsc == 0b101001 else "translation"), -1
    if fsc >> 4 == 0:
        return FSC_KINDS[fsc >> 2], fsc & 3
    if fsc == 0b010000 or (0b010011 <= fsc <= 0b010111):
        return "external abort", level
    return "other", level


def guest_access(iss: int) -> GuestAccess | None:
    """ISS.ISV's syndrome of a data abort, or None when ISV = 0."""
    if not bits(iss, 24, 24):
        return None
    sas, srt, sf = bits(iss, 23, 22), bits(iss, 20, 16), bool(bits(iss, 15, 15))
    reg = ("xzr" if sf else "wzr") if srt == 31 else f"{'x' if sf else 'w'}{srt}"
    return GuestAccess(1 << sas, reg, srt, sf, bool(bits(iss, 21, 21)), bool(bits(iss, 14, 14)))


def hpfar_ipa_page(hpfar: int) -> int:
    """The faulting IPA's page: HPFAR_EL2.FIPA (bits [43:4]) holds IPA bits [51:12]; bit 63 (NS) is not
    part of the address."""
    return bits(hpfar, 43, 4) << 12


def fault_ipa(far: int, hpfar: int) -> int:
    """The faulting IPA when FAR_EL2 is valid: HPFAR_EL2.FIPA's page plus FAR_EL2[11:0] within it."""
    return hpfar_ipa_page(hpfar) | (far & 0xFFF)


def in_ranges(ipa: int, ranges) -> bool:
    """Whether `ipa` lies in one of the (start, size) ranges."""
    return any(start <= ipa < start + size for start, size in ranges)


def autopsy(esr: int, far: int, hpfar: int, ram: list | None = None, walk: GuestWalk | None = None) -> Stage2Fault:
    """The stage 2 abort described by ESR_EL2/FAR_EL2/HPFAR_EL2. `ram`: guest RAM as (IPA, size) pairs
    (what is not RAM is a device); `walk`: the guest walk of FAR_EL2, kept for the report and used
    for the IPA when HPFAR_EL2 may be UNKNOWN."""
    esr, far, hpfar = esr & MASK64, far & MASK64, hpfar & MASK64
    ec, iss = esr_mod.exception_class(esr), bits(esr, 24, 0)
    instruction = ec in (esr_mod.EC_IABT_LOW, esr_mod.EC_IABT_CUR)
    data = ec in (esr_mod.EC_DABT_LOW, esr_mod.EC_DABT_CUR)
    is_s2 = ec in (esr_mod.EC_IABT_LOW, esr_mod.EC_DABT_LOW)
    fsc = bits(iss, 5, 0)
    kind, level = fault_kind(fsc)
    fnv, s1ptw = bool(bits(iss, 10, 10)), bool(bits(iss, 7, 7))
    va = None if fnv else far
    page = hpfar_ipa_page(hpfar)
    reliable = s1ptw or kind != "permission"
    offset_known = not fnv and not s1ptw
    ipa = fault_ipa(far, hpfar) if offset_known else page
    if not reliable and walk is not None and walk.ipa is not None:
        ipa, page, offset_known = walk.ipa, walk.ipa & ~0xFFF, True
    access = guest_access(iss) if data else None
    in_ram = None if ram is None else in_ranges(ipa, ram)
    reliable = reliable or (walk is not None and walk.ipa is not None)
    f = dict(esr=esr, far=far, hpfar=hpfar, ec=ec, instruction=instruction, is_stage2_abort=is_s2, va=va,
             ipa_page=page, ipa=ipa, ipa_offset_known=offset_known, ipa_reliable=reliable,
             write=bool(bits(iss, 6, 6)) if data else None, access=access, s1ptw=s1ptw,
             cache_maintenance=bool(data and bits(iss, 8, 8)), external=bool(bits(iss, 9, 9)), fsc=fsc, kind=kind,
             level=level, status=esr_mod.fault_status(fsc), in_guest_ram=in_ram, walk=walk)
    action, advice = _advice(f, esr_mod.instruction_length(esr))
    return Stage2Fault(**f, action=action, advice=advice)


def _advice(f: dict, length: int) -> tuple[VmmAction, str]:
    if not f["is_stage2_abort"]:
        return VmmAction.NOT_A_STAGE2_ABORT, ("ESR_EL2.EC is not a data or instruction abort from a lower EL: "
                                              "this exit is not a stage 2 fault")
    kind, ipa, page = f["kind"], f["ipa"], f["ipa_page"]
    retry = "then return to the guest at the same PC (ELR_EL2 unchanged) so the access is retried"
    if f["s1ptw"]:
        if kind == "permission":
            return VmmAction.FIX_PERMISSION, (f"the guest's page table page at IPA {page:#x} is mapped at stage 2 "
                                              f"without read permission: the table walker must read it; {retry}")
        return VmmAction.MAP_TABLE_PAGE, (f"the guest's own page table page at IPA {page:#x} is not mapped at stage "
                                          f"2 (a table walk faulted, not the access): map that page, {retry}")
    if kind == "access flag":
        return VmmAction.SET_ACCESS_FLAG, f"set AF in the stage 2 descriptor of IPA {page:#x} (or VTCR_EL2.HA), {retry}"
    if kind == "permission":
        what = "execute" if f["instruction"] else ("write" if f["write"] else "read")
        return VmmAction.FIX_PERMISSION, (f"IPA {page:#x} is mapped but stage 2 forbids this {what} (dirty "
                                          f"logging or copy-on-write: make it writable; execute: clear XN "
                                          f"after cleaning the caches to PoU), {retry}")
    if kind == "address size":
        return VmmAction.FIX_STAGE2, (f"an address is beyond what VTCR_EL2 allows (the IPA {ipa:#x} beyond T0SZ, "
                                      f"or VTTBR_EL2 or a descriptor beyond PS): fix the stage 2 tables or VTCR_EL2; "
                                      f"if the guest really went beyond its IPA space, inject an abort")
    if kind != "translation":
        return VmmAction.INJECT_ABORT, (f"{f['status']}: nothing to map or emulate; inject a synchronous external "
                                        f"abort into the guest (ESR_EL1/FAR_EL1, then its VBAR_EL1 vector)")
    if f["in_guest_ram"]:
        return VmmAction.MAP_PAGE, (f"IPA {page:#x} is guest RAM that stage 2 does not map: allocate or find the "
                                    f"backing page, map it at stage 2, {retry}")
    if f["instruction"]:
        return VmmAction.INJECT_ABORT, (f"the guest executes from IPA {page:#x}, which is not RAM: inject a prefetch "
                                        f"abort into the guest")
    skip = f"then ELR_EL2 += {length} to skip the instruction"
    ram_note = "" if f["in_guest_ram"] is False else " (no guest RAM ranges given: if it is RAM, map it instead)"
    if f["access"] is not None:
        a = f["access"]
        if f["write"]:
            op = f"write the low {a.size} byte(s) of {a.register} to the device at IPA {ipa:#x}"
        else:
            ext = "sign-extended" if a.sign_extend else "zero-extended"
            op = f"read {a.size} byte(s) from the device at IPA {ipa:#x} into {a.register} ({ext})"
        return VmmAction.EMULATE_MMIO, f"MMIO: {op}, {skip}{ram_note}"
    return VmmAction.DECODE_MMIO, (f"MMIO at IPA {ipa:#x} without an instruction syndrome (ISV = 0: e.g. a load "
                                   f"pair or writeback): decode the instruction at the guest's PC to emulate it, "
                                   f"or inject an abort as KVM does{ram_note}")

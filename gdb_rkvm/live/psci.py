"""PSCI on the live kernel: which conduit it uses, where a call of that conduit lands, and (while a watch
is armed) the calls it made and what they returned.

The conduit comes from the kernel's own choice, made from the device tree's /psci `method` property:
`psci_conduit` (drivers/firmware/psci/psci.c, enum arm_smccc_conduit: 0 none, 1 SMC, 2 HVC), else
which function `invoke_psci_fn` points at. With HVC, a PSCI call is an exception to EL2: whatever
VBAR_EL2 holds answers it, and neither the kernel's hyp-stub nor the rkvm stub implements PSCI (they
return HVC_STUB_ERR), so CPU_ON, CPU_OFF, SYSTEM_OFF... fail once such vectors are there.

The watch puts silent breakpoints on the HVC and SMC instructions of the kernel's SMCCC entry points,
`__arm_smccc_hvc` and `__arm_smccc_smc` (every PSCI call goes through one: invoke_psci_fn ->
arm_smccc_hvc/smc), and on the instruction after each: x0..x3 before, x0 after, VBAR_EL2 at the time,
for every call whose x0 is an SMCCC function ID. Four breakpoints, not one per conduit instruction of the
kernel: each breakpoint costs at every stop and resume (QEMU flushes its translated code), and triage
keeps the watch armed for the whole run. Bounded to MAX_CALLS.
"""

from dataclasses import asdict, dataclass

import gdb

from gdb_rkvm.model import elf_symtab
from gdb_rkvm.arch import regfields, smccc
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, symbol_files
from gdb_rkvm.live.gdb_state import STATE, StopCheckBreakpoint

CONDUITS = {0: "none", 1: "smc", 2: "hvc"}
ENTRY_POINTS = ("__arm_smccc_hvc", "__arm_smccc_smc")
MAX_CALLS = 256
# What answers PSCI for each kind of EL2 vector table (vbar_el2.classify): known not to, for these two.
NOT_PSCI = {"hyp-stub": "the kernel's hyp-stub answers HVC_STUB_ERR to anything but its own calls",
            "rkvm-stub": "the rkvm stub answers HVC_STUB_ERR to any x0 it does not know"}


def conduit() -> dict:
    """{'conduit': 'smc' | 'hvc' | 'none' | None, 'how': where it was read}."""
    try:
        value = int(gdb.parse_and_eval("(int)psci_conduit"))
        return {"conduit": CONDUITS.get(value, f"unknown ({value})"), "how": "psci_conduit"}
    except gdb.MemoryError:
        return {"conduit": None, "how": "psci_conduit not readable yet (kernel not mapped yet: boot further)"}
    except gdb.error:
        pass
    fn = t.read_u64_symbol("invoke_psci_fn")
    sym = t.symbol_at(fn) if fn else None
    for name in ("hvc", "smc"):
        if sym and f"_{name}" in sym:
            return {"conduit": name, "how": f"invoke_psci_fn = {sym}"}
    return {"conduit": None, "how": "psci_conduit and invoke_psci_fn not readable (no PSCI driver, or no symbols)"}


@dataclass
class PsciCall:
    cpu: int
    conduit: str          # hvc | smc
    site: int             # the HVC/SMC instruction's VA
    site_symbol: str | None
    x0: int
    x1: int
    x2: int
    x3: int
    call: str             # decoded: 'PSCI CPU_ON(target_cpu=...)'
    function: str         # 'PSCI CPU_ON'
    psci: bool
    vbar_el2: int | None  # where an HVC goes on this CPU
    vbar_kind: str        # hyp-stub | rkvm-stub | ram | ...
    result: int | None = None
    result_text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class _SiteBreakpoint(StopCheckBreakpoint):
    def __init__(self, va: int, conduit_name: str, after: bool, watch):
        super().__init__(f"*{va:#x}", internal=True)
        self.silent = True
        self.va, self.conduit, self.after, self.watch = va, conduit_name, after, watch

    def check(self):
        try:
            self.watch.hit(self)
        except (gdb.error, RkvmError, ValueError):
            pass
        return False


class PsciWatch:
    """Silent breakpoints recording the kernel's SMCCC calls (PSCI and the others) by HVC and SMC."""

    def __init__(self):
        self.calls: list[PsciCall] = []
        self.open: dict[int, PsciCall] = {}     # cpu -> the call whose return is awaited
        self.bps: list[_SiteBreakpoint] = []
        self.dropped = 0

    def arm(self) -> int:
        vmlinux, slide = symbol_files.vmlinux_at_slide("the HVC and SMC instructions")
        entry = elf_symtab.link_addresses(vmlinux, ENTRY_POINTS)
        for name, bits in (("hvc", smccc.HVC_BITS), ("smc", smccc.SMC_BITS)):
            start = entry.get(f"__arm_smccc_{name}")
            if start is None:
                continue
            for va, _imm in elf_symtab.conduit_sites(vmlinux, bits):
                if start <= va < start + 0x40:   # the entry point's own instruction (SMCCC macro: the 2nd)
                    va = (va + slide) & t.MASK64
                    self.bps.append(_SiteBreakpoint(va, name, False, self))
                    self.bps.append(_SiteBreakpoint(va + 4, name, True, self))
        if not self.bps:
            raise RkvmError(f"no __arm_smccc_hvc/__arm_smccc_smc with an HVC/SMC in {vmlinux}")
        return len(self.bps) // 2

    def hit(self, bp: _SiteBreakpoint) -> None:
        from gdb_rkvm.live.el2_traps import current_cpu
        cpu = current_cpu()
        if bp.after:
            call = self.open.pop(cpu, None)
            if call is not None and call.site + 4 == bp.va:
                call.result = t.read_current(["x0"])["x0"]
                fid = smccc.decode_function_id(call.x0)
                call.result_text = smccc.psci_return(call.result, fid) if call.psci else f"{call.result:#x}"
            return
        regs = t.read_current(["x0", "x1", "x2", "x3"])
        fid = smccc.decode_function_id(regs["x0"])
        if fid is None:          # the hyp-stub's own calls (HVC_SET_VECTORS...): not SMCCC
            return
        if len(self.calls) >= MAX_CALLS:
            self.dropped += 1
            return
        decoded = smccc.decode_call(regs["x0"], regs["x1"], regs["x2"], regs["x3"])
        vbar, kind = None, ""
        if bp.conduit == "hvc":
            vbar = t.read_current(["VBAR_EL2"])["VBAR_EL2"]
            try:
                kind = classify(vbar, kernel_facts.landmarks([vbar])).kind
            except (RkvmError, gdb.error):
                kind = "unknown"
        call = PsciCall(cpu, bp.conduit, bp.va, t.symbol_at(bp.va), regs["x0"], regs["x1"], regs["x2"], regs["x3"],
                        decoded.summary, fid.label, fid.service == "PSCI", vbar, kind)
        self.calls.append(call)
        self.open[cpu] = call

    def disarm(self) -> None:
        for bp in self.bps:
            if bp.is_valid():
                bp.delete()
        self.bps = []


def watch() -> PsciWatch | None:
    return getattr(STATE, "psci_watch", None)


def arm_watch() -> int:
    if watch() is not None:
        return len(watch().bps) // 2
    w = PsciWatch()
    try:
        n = w.arm()
    except BaseException:
        w.disarm()
        raise
    STATE.psci_watch = w
    return n


def disarm_watch() -> None:
    w = watch()
    if w is not None:
        w.disarm()
        STATE.psci_watch = None


def facts() -> dict:
    """The conduit, where a call of it lands on each CPU, and the calls the watch recorded."""
    c = conduit()
    cpus = {}
    vbars = {n: t.read_register("VBAR_EL2", n) for n, _ in t.cpu_threads()}
    marks = kernel_facts.landmarks(list(vbars.values()))
    for n, v in vbars.items():
        kind = classify(v, marks).kind
        if c["conduit"] == "hvc":
            lands = f"VBAR_EL2 {v:#x} + 0x400 ({classify(v, marks).text})" if v else "nowhere: VBAR_EL2 not set"
            handles = False if kind in NOT_PSCI or not v else None
            why = NOT_PSCI.get(kind, "" if v else "VBAR_EL2 is 0")
        elif c["conduit"] == "smc":
            try:
                tsc = regfields.smc_traps_to_el2(t.read_register("HCR_EL2", n))
            except RkvmError:
                tsc = False
            lands = "EL2 (HCR_EL2.TSC traps SMC)" if tsc else "EL3: the firmware (QEMU itself on a board without EL3)"
            handles, why = (None, "") if tsc else (True, "")
        else:
            lands, handles, why = "", None, ""
        cpus[str(n)] = {"vbar_el2": v, "vbar_kind": kind, "lands": lands, "handles_psci": handles, "why": why}
    w = watch()
    return {**c, "cpus": cpus, "watching": w is not None,
            "calls": [x.to_dict() for x in w.calls] if w else [], "calls_dropped": w.dropped if w else 0}

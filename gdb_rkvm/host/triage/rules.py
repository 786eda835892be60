"""Diagnosis rules: pure functions from a snapshot (model/snapshot.Snapshot, read from `rkvm snapshot
--json`) and what the run saw, to
findings with a stable code, a severity, the CPUs, evidence and a plain explanation."""

from dataclasses import asdict, dataclass, field

from gdb_rkvm.arch import esr, smccc, vectors
from gdb_rkvm.arch.fields import MASK64
from gdb_rkvm.model.snapshot import CpuState, Snapshot, StubFault
from gdb_rkvm.model.world import VbarOrigin


@dataclass
class Finding:
    code: str
    severity: str          # error | warning
    cpus: list
    summary: str
    evidence: list = field(default_factory=list)
    explanation: str = ""

    def to_dict(self):
        return asdict(self)


def kernel_panic(snap: Snapshot, ctx: dict) -> list[Finding]:
    p = ctx.get("panic")
    if not p:
        return []
    trace = []
    if p.get("cpu") is not None:
        cpu = snap.cpu(p["cpu"])
        trace = [f"CPU {p['cpu']}: {frame}" for frame in ((cpu.backtrace if cpu else None) or [])[:8]]
    return [Finding("kernel-panic", "error", [p["cpu"]] if p.get("cpu") is not None else [],
                    f"kernel panic: {p['message']}", [f"stopped in {p['function']}()"] + trace,
                    "The kernel gave up: everything after this line of the log is the panic path. The "
                    "backtrace of the CPU that panicked shows who called it.")]


def ram_text(snap: Snapshot) -> str:
    """The host's RAM ranges as evidence prints them."""
    return ", ".join(f"{s:#x}-{e:#x}" for s, e in snap.ram)


def vbar_not_ram(snap: Snapshot, ctx: dict) -> list[Finding]:
    cpus = [c.cpu for c in snap.cpus if c.summary and c.summary.vbar_el2_kind == "not-ram"]
    if not cpus:
        return []
    v = {snap.vbars()[n] for n in cpus}
    ram = ram_text(snap)
    return [Finding("vbar-el2-not-ram", "error", cpus,
                    f"VBAR_EL2 points outside RAM ({', '.join(f'{x:#x}' for x in sorted(v))})",
                    [f"CPU {n}: VBAR_EL2 = {snap.vbars()[n]:#x}" for n in cpus] + [f"RAM: {ram}"],
                    "EL2 runs with its MMU off, so VBAR_EL2 must be the physical address of a vector table in "
                    "RAM. Here there is nothing to fetch: the next exception to EL2 on these CPUs (an HVC, "
                    "anything) faults again at the same vectors and the CPU never comes back.")]


V2P_EXPLANATION = ("virt_to_phys() is arithmetic that is only right for the kernel's linear map. Module code and "
                   "vmalloc memory are mapped page by page from anywhere in RAM, so the formula gives a wrong "
                   "address (often not RAM at all).")


def _origin_evidence(origin: VbarOrigin, pa: int) -> list[str]:
    """How a physical address EL2 was given is virt_to_phys() of a module or vmalloc VA."""
    sym = f" <{origin.symbol}>" if origin.symbol else ""
    real = f"{origin.real_pa:#x}" if origin.real_pa is not None else "unmapped"
    return [f"virt_to_phys({origin.va:#x}{sym}) = {pa:#x} (the kernel's formula: VA - kimage_voffset)",
            f"the page-table walk of {origin.va:#x} gives PA {real}"]


def vbar_from_virt_to_phys(snap: Snapshot, ctx: dict) -> list[Finding]:
    out = []
    for vbar_hex, origin in snap.vbar_origins.items():
        if not origin:
            continue
        vbar = int(vbar_hex, 16)
        cpus = [n for n, v in snap.vbars().items() if v == vbar]
        out.append(Finding(
            "vbar-el2-from-virt-to-phys", "error", cpus,
            f"VBAR_EL2 = {vbar:#x} is virt_to_phys() of a {origin.region} address", _origin_evidence(origin, vbar),
            V2P_EXPLANATION + " Copy the vectors to memory from alloc_pages() or "
            "__get_free_pages() and use page_to_phys()/virt_to_phys() of that linear-map address."))
    return out


def vbar_mismatch(snap: Snapshot, ctx: dict) -> list[Finding]:
    vbars = {n: v for n, v in snap.vbars().items() if v}
    if len(set(vbars.values())) <= 1:
        return []
    groups = {}
    for n, v in sorted(vbars.items()):
        groups.setdefault(v, []).append(n)
    return [Finding("vbar-el2-mismatch", "warning", sorted(vbars),
                    f"CPUs disagree on VBAR_EL2 ({len(groups)} different values)",
                    [f"CPU {', '.join(map(str, cs))}: {v:#x}" for v, cs in groups.items()],
                    "VBAR_EL2 is a per-CPU register. Setting it from one CPU changes that CPU only; use "
                    "on_each_cpu() (and handle CPU hotplug), or an HVC on the other CPUs reaches old vectors.")]


def el2_code_relocated(snap: Snapshot, ctx: dict) -> list[Finding]:
    """The code at VBAR_EL2 holds kernel VAs where its ELF has absolute relocations."""
    out = []
    for vbar_hex, chk in snap.el2_copy.items():
        rel = [d for d in (chk or {}).get("diffs", []) if d["cause"] == "relocated"]
        if not rel:
            continue
        vbar = int(vbar_hex, 16)
        cpus = sorted(n for n, v in snap.vbars().items() if v == vbar)
        ev = [f"{chk['elf']} at PA {chk['base']:#x}: {chk['verdict']}"]
        ev += [f"+{d['offset']:#x} {d['location']}: {d['memory']:#x} where the ELF has {d['elf']:#x}"
               + (f" (an absolute address of {d['target']})" if d.get("target") else "") for d in rel[:8]]
        if len(rel) > 8:
            ev.append(f"... and {len(rel) - 8} more")
        out.append(Finding(
            "el2-code-relocated", "error", cpus,
            f"the EL2 code at VBAR_EL2 = {vbar:#x} holds {len(rel)} kernel virtual address(es) where its ELF has "
            "absolute relocations", ev,
            "The EL2 code was built into the module with absolute references (.quad label, ldr =label, movz/movk "
            "of an address). The module loader filled them with kernel virtual addresses, and the copy to the "
            "physical page kept them. EL2 runs with its MMU off: a branch or load through one faults. Make the "
            "references PC-relative (adr, offsets from a label); `rkvm lint-el2` lists them from the object "
            "before anything runs, and `rkvm stub --elf` compares the copy with the ELF."))
    return out


_ABORT_AT_EL2 = {0x21: "fetching an instruction from", 0x25: "accessing data at"}


def el2_fault_at_kernel_va(snap: Snapshot, ctx: dict) -> list[Finding]:
    """A CPU took an abort at EL2 on a kernel VA (its stub fault record, or its live ESR_EL2/ELR/FAR)."""
    from gdb_rkvm.model.el2lint.compare import is_kernel_va
    symbols = snap.kernel_va_symbols
    groups: dict = {}
    for c in snap.cpus:
        n = c.cpu
        seen = []
        rec = _fault_record(snap, n)
        if rec:
            seen.append(("the stub's fault record", rec.esr, rec.elr, rec.far))
        if c.summary and c.summary.el == 2 and c.register("ESR_EL2") is not None:
            seen.append(("ESR_EL2", c.register("ESR_EL2"), c.register("ELR_EL2"), c.register("FAR_EL2")))
        for source, esr_v, elr, far in seen:
            ec = esr.exception_class(esr_v)
            if ec not in _ABORT_AT_EL2:
                continue
            addr = elr if ec == 0x21 else far
            if addr is None or not is_kernel_va(addr):
                continue
            if ec == 0x25 and _stack_push_fault(c, rec) is not None:
                continue   # a push on SP_EL2 = 0 wraps to 0xffff...fff0: el2-stack-unset's case, not a kernel VA
            key = (ec, addr)
            if key not in groups:
                groups[key] = {"cpus": [], "esr": esr_v, "elr": elr, "source": source}
            if n not in groups[key]["cpus"]:
                groups[key]["cpus"].append(n)
            break
    out = []
    for (ec, addr), g in groups.items():
        sym = symbols.get(f"{addr:#x}")
        at = f"{addr:#x}" + (f" <{sym}>" if sym else "")
        ev = [f"{g['source']}: ESR {g['esr']:#x} ({esr.decode(g['esr']).summary})",
              f"{'ELR_EL2' if ec == 0x21 else 'FAR_EL2'} {at}: a kernel virtual address"
              + (f", in {sym.split('+')[0]}" if sym else "")]
        if ec == 0x25 and g["elr"] is not None:
            ev.append(f"ELR_EL2 {g['elr']:#x}: the instruction that made the access")
        cpus = sorted(g["cpus"])
        out.append(Finding(
            "el2-fault-at-kernel-va", "error", cpus,
            f"CPU {', '.join(map(str, cpus))} faulted at EL2 {_ABORT_AT_EL2[ec]} kernel virtual address {at}", ev,
            "EL2 runs with its MMU off, so every address it uses is physical; a kernel virtual address (the "
            "TTBR1 half, 0xffff...) is beyond the physical address size and takes an address size fault. The "
            "EL2 code branched to or loaded through an address made for EL1: a .quad label, an ldr =label or "
            "a function pointer that the module loader relocated, or a call into the kernel. `rkvm lint-el2` "
            "finds these in the object; `rkvm stub --elf` compares the copy with the ELF."))
    return out


def _merge(code: str, severity: str, per_cpu: list[tuple[int, list[str]]], summary, explanation: str) -> Finding:
    """One finding for several CPUs in the same state: evidence every CPU shares is said once, the
    rest prefixed with its CPU. summary(cpus_text, plural) words the summary."""
    cpus = [n for n, _ in per_cpu]
    lists = [ev for _, ev in per_cpu]
    common = [e for e in lists[0] if all(e in ev for ev in lists[1:])]
    evidence = [f"CPU {n}: {e}" for n, ev in per_cpu for e in ev if e not in common] + common
    if len(cpus) > 1 and len(common) == len(lists[0]) and all(len(ev) == len(common) for ev in lists):
        evidence.append(f"(the same on CPU {', '.join(map(str, cpus))})")
    text = ", ".join(map(str, cpus))
    return Finding(code, severity, cpus, summary(f"CPU {text}", len(cpus) > 1), evidence, explanation)


def _fault_record(snap: Snapshot, cpu: int) -> StubFault | None:
    rec = snap.stub_record(cpu)
    return rec.fault if rec else None


def _stack_push_fault(c: CpuState, rec: StubFault | None) -> list[str] | None:
    """Evidence that an EL2 exception was a push on an SP_EL2 that was never set: a data abort taken
    at EL2 itself (ESR_ELx.EC 0x25, vector +0x200), by an instruction that stores through sp, at
    FAR_EL2 just below SP_EL2. None when the dots do not connect."""
    esr_v = rec.esr if rec else c.register("ESR_EL2")
    far = rec.far if rec else c.register("FAR_EL2")
    elr = rec.elr if rec else c.register("ELR_EL2")
    sp = c.summary.sp_el2 if c.summary else None
    if None in (esr_v, far, elr, sp) or esr.exception_class(esr_v) != esr.EC_DABT_CUR:
        return None
    below = (sp - far) & MASK64
    if not 0 < below <= 0x1000:
        return None
    elr_reg = c.el.registers.get("ELR_EL2") if c.el else None
    same = elr_reg is not None and elr_reg.value == elr
    insn = elr_reg.insn if same else None
    if insn is not None and "[sp" not in insn:
        return None
    sym = f" <{elr_reg.symbol}>" if same and elr_reg.symbol else ""
    ev = [f"ELR_EL2 {elr:#x}{sym}: `{insn}`, a store through sp" if insn else f"ELR_EL2 {elr:#x}{sym}",
          f"FAR_EL2 {far:#x} = SP_EL2 ({sp:#x}) - {below:#x}: the address the push wrote"
          + (", wrapped below 0 to no physical address (EL2's MMU is off)" if sp < below else "")]
    if rec and rec.vector == vectors.CURRENT_SPX_SYNC:
        ev.append("vector +0x200 (Current EL with SPx, Synchronous): the fault was taken at EL2 itself, "
                  "by EL2 code running on SP_EL2")
    return ev


SP_EL2_FROM_EL2 = ("SP_EL2 can only be set by code running at EL2 (`mov sp, xN` at EL2h; MSR SP_EL2 is for "
                   "EL3): from EL1 that takes an HVC to EL2 code that sets it, like the rkvm stub's "
                   "RKVM_HVC_SET_STACK, on every CPU before any HVC whose handler uses the stack.")


def el2_parked(snap: Snapshot, ctx: dict) -> list[Finding]:
    park = snap.rkvm_stub_park
    stuck = ctx.get("el2_stuck", {})
    groups: dict[str, list[tuple[int, list[str]]]] = {}
    pushes = False
    for c in snap.cpus:
        s, n = c.summary, c.cpu
        if s is None or s.el != 2:
            continue
        parked = s.pc_symbol == "rkvm_stub_park" or (park is not None and s.pc == park)
        looping = str(n) in stuck or n in stuck or vectors.contains(s.vbar_el2 or 0, s.pc)
        if not (parked or looping):
            continue
        esr_v = c.register("ESR_EL2")
        ev = [f"PC {s.pc:#x}" + (f" <{s.pc_symbol}>" if s.pc_symbol else "") + " at EL2"]
        if esr_v is not None:
            ev.append(f"ESR_EL2 {esr_v:#x}: {esr.decode(esr_v).summary}")
        rec = _fault_record(snap, n)
        push = _stack_push_fault(c, rec)
        for name in ("ELR_EL2", "FAR_EL2"):
            if c.register(name) is not None and not push:
                ev.append(f"{name} {c.register(name):#x}")
        if rec:
            ev.append(f"stub fault record: ESR {rec.esr:#x} ({esr.decode(rec.esr).summary}), "
                      f"ELR {rec.elr:#x}, vector +{rec.vector:#x}, {rec.count} fault(s)")
        if push:
            ev += push
            pushes = True
        how = ("parked in rkvm_stub_park after an exception the stub did not expect" if parked else
               "looping in the EL2 vector table: each attempt to handle the exception faults again")
        groups.setdefault(how, []).append((n, ev))
    explanation = ("A CPU stuck at EL2 stops answering the kernel (IPIs, RCU), so the system hangs without a "
                   "message: EL2 exceptions are not reported by the kernel. ESR_EL2 says what went wrong at EL2; "
                   "ELR_EL2 where.")
    if pushes:
        explanation += (" Here the EL2 handler pushed on its stack, and SP_EL2 had never been set, so the push "
                        "went below it, to an address that is no memory. " + SP_EL2_FROM_EL2)
    return [_merge("el2-parked", "error", per_cpu,
                   lambda who, many, how=how: f"{who} {'are' if many else 'is'} stuck at EL2, {how}", explanation)
            for how, per_cpu in groups.items()]


def el2_stack_unset(snap: Snapshot, ctx: dict) -> list[Finding]:
    stub_pas = set(snap.rkvm_stub_pas)
    per_cpu, any_uses = [], False
    for c in snap.cpus:
        n = c.cpu
        vbar, sp = (c.summary.vbar_el2, c.summary.sp_el2) if c.summary else (None, None)
        uses = snap.el2_code_uses_stack.get(f"{vbar:#x}") if vbar else None
        rec = snap.stub_record(n)
        never_set = vbar in stub_pas and rec is not None and rec.stack_top == 0
        if never_set or (sp == 0 and uses):
            any_uses = any_uses or bool(uses)
            if sp is None:
                value = "SP_EL2 unreadable"
            elif sp == 0:
                value = "SP_EL2 = 0x0: a push wraps below 0, to no memory (the CPU faults at EL2)"
            else:
                value = (f"SP_EL2 = {sp:#x}: left over from early boot, in memory the kernel owns "
                         "(a push overwrites it silently)")
            ev = [value, "the stub's record of the SP_EL2 it set on this CPU is 0" if never_set else "",
                  "the EL2 code at VBAR_EL2 addresses memory through sp" if uses else ""]
            per_cpu.append((n, [e for e in ev if e]))
    if not per_cpu:
        return []
    return [_merge("el2-stack-unset", "error" if any_uses else "warning", per_cpu,
                   lambda who, many: f"{who}: SP_EL2 was never set for the EL2 code, which uses the stack",
                   "Nothing sets SP_EL2 after early boot (the kernel's hyp-stub needs no stack), and what it holds "
                   "differs per CPU: a physical address early boot used, now kernel memory, or 0 on a CPU that "
                   "never needed one. EL2 code that pushes without setting it first overwrites kernel memory, or "
                   "faults. Give each CPU a stack (alloc_pages(), its PA) before any HVC that uses it. "
                   + SP_EL2_FROM_EL2)]


def cpu_stuck(snap: Snapshot, ctx: dict) -> list[Finding]:
    stuck = ctx.get("el1_stuck", [])
    return [Finding("cpu-stuck", "warning", [n], f"CPU {n}'s PC did not move between samples",
                    [f"PC {pc:#x}" for pc in [ctx.get("el1_stuck_pc", {}).get(str(n))] if pc is not None],
                    "The same PC at every sample usually means a tight loop or a wait that never ends.")
            for n in stuck]


def console_silent(snap: Snapshot, ctx: dict) -> list[Finding]:
    s = ctx.get("console_silent")
    if not s:
        return []
    return [Finding("no-console-progress", "warning", [], f"no console output for {s:.0f} s before the stop",
                    [f"last line: {ctx.get('last_console_line', '')}"],
                    "The guest stopped printing: a hang, or it is simply idle waiting for input.")]


def psci_unhandled(snap: Snapshot, ctx: dict) -> list[Finding]:
    """PSCI calls made by HVC that reached EL2 vectors which do not implement PSCI (the kernel's hyp-stub,
    the rkvm stub: both answer HVC_STUB_ERR), or came back with something PSCI never returns; else, with the
    HVC conduit, CPUs whose VBAR_EL2 would take the next one there."""
    p = snap.psci or {}
    bad = [c for c in p.get("calls", []) if c.get("conduit") == "hvc" and c.get("psci") and
           (c.get("vbar_kind") in ("hyp-stub", "rkvm-stub") or
            (c.get("result") is not None and not smccc.is_psci_result(c["result"])))]
    explanation = ("The kernel's PSCI conduit is HVC (the device tree's /psci method), so CPU_ON, CPU_OFF, "
                   "SYSTEM_OFF and the rest are exceptions to EL2, answered by whatever VBAR_EL2 points at. "
                   "Vectors that replace the hypervisor's must implement PSCI (or forward it) — the kernel's "
                   "hyp-stub and a minimal stub do not, and the kernel then cannot bring CPUs up or down or power "
                   "off. On a host whose firmware has EL3, use the SMC conduit; otherwise handle the PSCI "
                   "function IDs (0x84000000-0x8400001f, 0xc4000000-0xc400001f) in the EL2 code.")
    if bad:
        cpus = sorted({c["cpu"] for c in bad})
        evidence = []
        for c in bad[:8]:
            res = f", returned {c['result_text']}" if c.get("result") is not None else ", no return seen"
            where = f" <{c['site_symbol']}>" if c.get("site_symbol") else ""
            vbar = f"VBAR_EL2 {c['vbar_el2']:#x} ({c['vbar_kind']})" if c.get("vbar_el2") is not None else "EL2"
            evidence.append(f"CPU {c['cpu']}: {c['call']} by HVC at {c['site']:#x}{where} went to {vbar}{res}")
        if len(bad) > 8:
            evidence.append(f"... and {len(bad) - 8} more")
        return [Finding("psci-call-unhandled", "error", cpus,
                        f"{len(bad)} PSCI call(s) by HVC reached EL2 code that does not handle PSCI",
                        evidence, explanation)]
    if p.get("conduit") != "hvc":
        return []
    cpus = sorted(int(n) for n, c in (p.get("cpus") or {}).items() if c.get("handles_psci") is False)
    if not cpus:
        return []
    return [Finding("psci-conduit-hvc", "warning", cpus,
                    "the kernel calls PSCI by HVC, and VBAR_EL2 points at code that does not handle it",
                    [f"CPU {n}: {p['cpus'][str(n)]['lands']}: {p['cpus'][str(n)]['why']}" for n in cpus],
                    explanation)]


from gdb_rkvm.host.triage.guest_rules import GUEST_RULES  # noqa: E402  guest_rules builds on this module

RULES = [kernel_panic, vbar_from_virt_to_phys, vbar_not_ram, vbar_mismatch, el2_code_relocated,
         el2_fault_at_kernel_va, el2_parked, el2_stack_unset, cpu_stuck, console_silent, psci_unhandled,
         *GUEST_RULES]


def diagnose(snap: Snapshot | dict, ctx: dict) -> list[Finding]:
    """Every rule's findings, errors first, in rule order. A dict (rkvm snapshot --json, parsed) is
    read into a Snapshot first: a field of the wrong type or name is one RkvmError, not a KeyError."""
    if not isinstance(snap, Snapshot):
        snap = Snapshot.from_json(snap)
    findings = [f for rule in RULES for f in rule(snap, ctx)]
    return sorted(findings, key=lambda f: f.severity != "error")

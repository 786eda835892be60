"""Diagnosis rules: pure functions from a snapshot (rkvm snapshot --json) and what the run saw, to
findings with a stable code, a severity, the CPUs, evidence and a plain explanation."""

from dataclasses import asdict, dataclass, field

from ..arch import esr, smccc, vectors


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


def _cpu(snap: dict, n: int) -> dict:
    return next(c for c in snap["cpus"] if c["cpu"] == n)


def _vbars(snap: dict) -> dict[int, int]:
    return {int(k): v for k, v in snap["vbar_el2"].items()}


def kernel_panic(snap: dict, ctx: dict) -> list[Finding]:
    p = ctx.get("panic")
    if not p:
        return []
    trace = []
    if p.get("cpu") is not None:
        cpu = next((c for c in snap["cpus"] if c["cpu"] == p["cpu"]), {})
        trace = [f"CPU {p['cpu']}: {frame}" for frame in cpu.get("backtrace", [])[:8]]
    return [Finding("kernel-panic", "error", [p["cpu"]] if p.get("cpu") is not None else [],
                    f"kernel panic: {p['message']}", [f"stopped in {p['function']}()"] + trace,
                    "The kernel gave up: everything after this line of the log is the panic path. The "
                    "backtrace of the CPU that panicked shows who called it.")]


def vbar_not_ram(snap: dict, ctx: dict) -> list[Finding]:
    cpus = [c["cpu"] for c in snap["cpus"] if c.get("summary", {}).get("vbar_el2_kind") == "not-ram"]
    if not cpus:
        return []
    v = {_vbars(snap)[n] for n in cpus}
    ram = ", ".join(f"{s:#x}-{e:#x}" for s, e in snap.get("ram", []))
    return [Finding("vbar-el2-not-ram", "error", cpus,
                    f"VBAR_EL2 points outside RAM ({', '.join(f'{x:#x}' for x in sorted(v))})",
                    [f"CPU {n}: VBAR_EL2 = {_vbars(snap)[n]:#x}" for n in cpus] + [f"RAM: {ram}"],
                    "EL2 runs with its MMU off, so VBAR_EL2 must be the physical address of a vector table in "
                    "RAM. Here there is nothing to fetch: the next exception to EL2 on these CPUs (an HVC, "
                    "anything) faults again at the same vectors and the CPU never comes back.")]


def vbar_from_virt_to_phys(snap: dict, ctx: dict) -> list[Finding]:
    out = []
    for vbar_hex, origin in snap.get("vbar_origins", {}).items():
        if not origin:
            continue
        vbar = int(vbar_hex, 16)
        cpus = [n for n, v in _vbars(snap).items() if v == vbar]
        sym = f" <{origin['symbol']}>" if origin.get("symbol") else ""
        real = f"{origin['real_pa']:#x}" if origin.get("real_pa") is not None else "unmapped"
        out.append(Finding(
            "vbar-el2-from-virt-to-phys", "error", cpus,
            f"VBAR_EL2 = {vbar:#x} is virt_to_phys() of a {origin['region']} address",
            [f"virt_to_phys({origin['va']:#x}{sym}) = {vbar:#x} (the kernel's formula: VA - kimage_voffset)",
             f"the page-table walk of {origin['va']:#x} gives PA {real}"],
            "virt_to_phys() is arithmetic that is only right for the kernel's linear map. Module code and "
            "vmalloc memory are mapped page by page from anywhere in RAM, so the formula gives a wrong "
            "address (often not RAM at all). Copy the vectors to memory from alloc_pages() or "
            "__get_free_pages() and use page_to_phys()/virt_to_phys() of that linear-map address."))
    return out


def vbar_mismatch(snap: dict, ctx: dict) -> list[Finding]:
    vbars = {n: v for n, v in _vbars(snap).items() if v}
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


def el2_parked(snap: dict, ctx: dict) -> list[Finding]:
    out = []
    park = snap.get("rkvm_stub_park")
    stuck = ctx.get("el2_stuck", {})
    records = (snap.get("stub") or {}).get("records", {})
    for c in snap["cpus"]:
        s, n = c.get("summary", {}), c["cpu"]
        if s.get("el") != 2:
            continue
        parked = s.get("pc_symbol") == "rkvm_stub_park" or (park is not None and s["pc"] == park)
        looping = str(n) in stuck or n in stuck or vectors.contains(s.get("vbar_el2") or 0, s["pc"])
        if not (parked or looping):
            continue
        regs = c.get("el", {}).get("registers", {})
        esr_v = regs.get("ESR_EL2", {}).get("value")
        ev = [f"PC {s['pc']:#x}" + (f" <{s['pc_symbol']}>" if s.get("pc_symbol") else "") + " at EL2"]
        if esr_v is not None:
            ev.append(f"ESR_EL2 {esr_v:#x}: {esr.decode(esr_v).summary}")
        for name in ("ELR_EL2", "FAR_EL2"):
            if regs.get(name, {}).get("value") is not None:
                ev.append(f"{name} {regs[name]['value']:#x}")
        rec = (records.get(str(n)) or records.get(n) or {}).get("fault")
        if rec:
            ev.append(f"stub fault record: ESR {rec['esr']:#x} ({esr.decode(rec['esr']).summary}), "
                      f"ELR {rec['elr']:#x}, vector +{rec['vector']:#x}, {rec['count']} fault(s)")
        how = ("parked in rkvm_stub_park after an exception the stub did not expect" if parked else
               "looping in the EL2 vector table: each attempt to handle the exception faults again")
        out.append(Finding("el2-parked", "error", [n], f"CPU {n} is stuck at EL2, {how}", ev,
                           "A CPU stuck at EL2 stops answering the kernel (IPIs, RCU), so the system hangs "
                           "without a message: EL2 exceptions are not reported by the kernel. ESR_EL2 says "
                           "what went wrong at EL2; ELR_EL2 where."))
    return out


def el2_stack_unset(snap: dict, ctx: dict) -> list[Finding]:
    out = []
    records = (snap.get("stub") or {}).get("records", {})
    stub_pas = set(snap.get("rkvm_stub_pas", []))
    for c in snap["cpus"]:
        s, n = c.get("summary", {}), c["cpu"]
        vbar, sp = s.get("vbar_el2"), s.get("sp_el2")
        uses = snap.get("el2_code_uses_stack", {}).get(f"{vbar:#x}") if vbar else None
        rec = records.get(str(n)) or records.get(n)
        never_set = vbar in stub_pas and rec is not None and rec["stack_top"] == 0
        if never_set or (sp == 0 and uses):
            out.append(Finding(
                "el2-stack-unset", "error" if uses else "warning", [n],
                f"CPU {n}: SP_EL2 was never set for the EL2 code, which uses the stack",
                [f"SP_EL2 = {sp:#x}" if sp is not None else "SP_EL2 unreadable",
                 "the stub's record of the SP_EL2 it set on this CPU is 0" if never_set else "SP_EL2 is 0",
                 "the EL2 code at VBAR_EL2 addresses memory through sp" if uses else ""],
                "Nothing sets SP_EL2 after early boot (the kernel's hyp-stub needs no stack), and it is not "
                "reliably 0: it can still point into memory the kernel now owns. EL2 code that pushes "
                "without setting it first overwrites kernel memory, or faults. Set SP_EL2 on each CPU "
                "(a per-CPU stack from alloc_pages(), its PA) before any HVC that uses the stack."))
            out[-1].evidence = [e for e in out[-1].evidence if e]
    return out


def cpu_stuck(snap: dict, ctx: dict) -> list[Finding]:
    stuck = ctx.get("el1_stuck", [])
    return [Finding("cpu-stuck", "warning", [n], f"CPU {n}'s PC did not move between samples",
                    [f"PC {pc:#x}" for pc in [ctx.get("el1_stuck_pc", {}).get(str(n))] if pc is not None],
                    "The same PC at every sample usually means a tight loop or a wait that never ends.")
            for n in stuck]


def console_silent(snap: dict, ctx: dict) -> list[Finding]:
    s = ctx.get("console_silent")
    if not s:
        return []
    return [Finding("no-console-progress", "warning", [], f"no console output for {s:.0f} s before the stop",
                    [f"last line: {ctx.get('last_console_line', '')}"],
                    "The guest stopped printing: a hang, or it is simply idle waiting for input.")]


def psci_unhandled(snap: dict, ctx: dict) -> list[Finding]:
    """PSCI calls made by HVC that reached EL2 vectors which do not implement PSCI (the kernel's hyp-stub,
    the rkvm stub: both answer HVC_STUB_ERR), or came back with something PSCI never returns; else, with the
    HVC conduit, CPUs whose VBAR_EL2 would take the next one there."""
    p = snap.get("psci") or {}
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


RULES = [kernel_panic, vbar_from_virt_to_phys, vbar_not_ram, vbar_mismatch, el2_parked, el2_stack_unset,
         cpu_stuck, console_silent, psci_unhandled]


def diagnose(snap: dict, ctx: dict) -> list[Finding]:
    """Every rule's findings, errors first, in rule order."""
    findings = [f for rule in RULES for f in rule(snap, ctx)]
    return sorted(findings, key=lambda f: f.severity != "error")

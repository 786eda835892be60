"""The guest's EL1 registers beside the host's, as text: while a CPU is in the guest its live EL1
registers are the guest's and the host's wait in the stub's host save area (RKVM_HOST_*). Pure: the
live layer hands in the values it read."""

from gdb_rkvm.model.stub_abi import HostSave

# the registers that tell the two worlds apart at a glance: translation (whose page tables), vectors
# (whose exception handlers), and the stack pointer
SHOWN = ("SCTLR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "MAIR_EL1", "VBAR_EL1", "TPIDR_EL1", "SP_EL1")


def _host_value(host: HostSave, name: str) -> int | None:
    if name == "SP_EL1":
        return host.sp_el1
    if name == "SP_EL0":
        return host.sp_el0
    return host.el1.get(name)


def el1_beside_host(cpu: int, in_guest: bool, live: dict, host: HostSave | None) -> list[str]:
    """Lines: one per register, the live value and the host save area's, each column named by whose
    it is. Without a save area (no rkvm stub) only the live column."""
    who = "guest's" if in_guest else "host's"
    saved = "host save area" + ("" if in_guest else " (stale: the host is live)")
    head = f"CPU {cpu}: live EL1 registers are the {who}"
    rows = [("register", f"live ({who})", saved if host is not None else "")]
    for name in SHOWN:
        if name not in live:
            continue
        h = _host_value(host, name) if host is not None else None
        rows.append((name, f"{live[name]:#x}", f"{h:#x}" if h is not None else ""))
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = [head] + [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
    if host is not None:
        lines.append(f"  host resumes at ELR_EL2 {host.elr_el2:#x} with HCR_EL2 {host.hcr_el2:#x}; "
                     f"guest entries on this CPU: {host.runs}")
    return lines

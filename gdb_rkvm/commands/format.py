"""Small text helpers shared by the commands' human-readable output."""


def hx(value) -> str:
    return "-" if value is None else f"{value:#x}"


def with_symbol(value, symbol) -> str:
    return hx(value) + (f" <{symbol}>" if symbol else "")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def fields_block(fields: list[dict], indent: str = "    ") -> str:
    return "\n".join(f"{indent}{f['name']}{f['bits']} = {f['value']:#x}" + (f"  {f['meaning']}" if f['meaning'] else "")
                     + (f"  (reset value {f['reset']:#x})" if f.get("reset") is not None
                        and f["reset"] != f["value"] else "")
                     for f in fields)


def human_size(n: int) -> str:
    """'4 KiB', '2 MiB', '1.99 GiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            if n % (1 << shift) == 0:
                return f"{n >> shift} {unit}"
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n} B"


# ---- the guest world (rkvm cpus, el, vcpu): w is a model/world CpuWorld ----

def world_cell(w) -> str:
    """'host', 'guest VMID 1' or '-' (unreadable)."""
    if w is None:
        return "-"
    return f"guest VMID {w.vmid}" if w.in_guest else "host"


def el1_beside(w) -> str:
    """The live EL1 registers (the guest's) beside the host's from the stub's host save area."""
    h = w.host_save
    saved = dict(h.el1) if h else {}
    if h:
        saved["SP_EL1"] = h.sp_el1
    names = ["SP_EL1"] + [n for n in w.el1_live if n != "SP_EL1"]
    rows = [[n, hx(w.el1_live.get(n)), hx(saved.get(n))] for n in names if n in w.el1_live or n in saved]
    return table(rows, ["EL1 register", "guest (live)", "host (saved by the stub)"])


def clobber_warning(w) -> str | None:
    """A warning when the host runs on EL1 registers that are not the ones the stub saved for it."""
    bad = w.host_el1_clobbered()
    if not bad:
        return None
    regs = ", ".join(f"{n} {live:#x} (saved {saved:#x})" for n, (live, saved) in bad.items())
    return (f"the host's live EL1 registers differ from the stub's host save area after a guest run: {regs}; "
            "the world switch's exit did not load the host's EL1 state back")

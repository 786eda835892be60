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

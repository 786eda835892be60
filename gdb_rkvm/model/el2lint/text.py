"""Text that came from a file, made safe for a terminal: control and non-printable characters escaped."""


def printable(text: str) -> str:
    """`text` with every non-printable character (and the backslash) escaped: \\n, \\x1b, \\u200b...

    Symbol and section names come from the ELF and may hold anything; nothing from a file reaches
    the terminal unescaped.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)

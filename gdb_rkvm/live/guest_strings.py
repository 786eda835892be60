"""C strings read from guest memory, bounded and never raising on bad bytes.

`gdb.Value.string()` raises UnicodeDecodeError (not gdb.error) on bytes >= 0x80 and, for a `char *`,
reads until it finds a NUL however far that is. Guest strings (module names, section names) are read
here instead: at most `limit` bytes, page by page, invalid UTF-8 replaced. The text is still guest
text: escape it (guest_text.escape) before printing, check it before a GDB command.
"""

import gdb

from gdb_rkvm.model.guest_text import decode

PAGE = 4096


def _read_until_nul(addr: int, limit: int) -> bytes:
    inferior = gdb.selected_inferior()
    out = b""
    while len(out) < limit:
        chunk = min(limit - len(out), PAGE - ((addr + len(out)) % PAGE))
        data = bytes(inferior.read_memory(addr + len(out), chunk))
        nul = data.find(b"\0")
        if nul >= 0:
            return out + data[:nul]
        out += data
    return out


def c_string(value: gdb.Value, limit: int = 256) -> str:
    """The NUL-terminated string in a `char[N]` or at a `char *` value, at most `limit` bytes.
    Memory errors are gdb.MemoryError (a gdb.error), as for any read."""
    kind = value.type.strip_typedefs()
    if kind.code == gdb.TYPE_CODE_ARRAY:
        if value.address is None:  # not in target memory: GDB holds the bytes already
            return decode(value.string(encoding="latin-1", length=min(kind.sizeof, limit)).encode("latin-1")
                          .split(b"\0", 1)[0])
        addr, limit = int(value.address), min(kind.sizeof, limit)
    else:
        addr = int(value)
    if addr == 0:
        return ""
    if addr + limit > 1 << 64:
        limit = (1 << 64) - addr
    return decode(_read_until_nul(addr, limit))

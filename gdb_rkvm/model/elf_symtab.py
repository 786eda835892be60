"""Link addresses of a few named symbols in a (large) ELF, fast, cached by file identity.

vmlinux has some 80,000 symbols; pyelftools builds a Python object per symbol (about a second),
so only the section headers come from it. The entries are scanned with struct, and only the
string-table offsets of the wanted names are compared. Cached per (path, size, mtime): a rebuilt
vmlinux is read again.
"""

import functools
import os
import struct

# Elf64_Sym: st_name (4), st_info (1), st_other (1), st_shndx (2), st_value (8), st_size (8).
_SYM64 = struct.Struct("<IBBHQQ")
# Names gdb-rkvm ever asks vmlinux for; one scan answers them all.
KERNEL_NAMES = ("vectors", "start_kernel", "init_task", "__pi_kaslr_early_init", "kaslr_early_init")


def _name_offsets(strtab: bytes, names: tuple[str, ...]) -> dict[int, str]:
    """String-table offset -> name, for every offset whose string is a wanted name. Linkers share
    string tails ("vectors" may live at the end of "__hyp_stub_vectors"), so any occurrence of
    the name followed by its NUL counts, whatever precedes it."""
    found = {}
    for name in names:
        needle = name.encode() + b"\0"
        start = strtab.find(needle)
        while start != -1:
            found[start] = name
            start = strtab.find(needle, start + 1)
    return found


@functools.lru_cache(maxsize=8)
def _scan(path: str, size: int, mtime_ns: int, names: tuple[str, ...]) -> dict[str, int]:
    from elftools.common.exceptions import ELFError   # imported when needed: not at GDB's start
    from elftools.elf.elffile import ELFFile
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or not elf.little_endian:
                return {}
            symtab = elf.get_section_by_name(".symtab")
            if symtab is None:
                return {}
            strtab = elf.get_section(symtab["sh_link"]).data()
            entries = symtab.data()
    except (OSError, ELFError, ValueError):
        return {}
    wanted = _name_offsets(strtab, names)
    out: dict[str, int] = {}
    is_global: dict[str, bool] = {}
    for st_name, info, _other, shndx, value, _size in _SYM64.iter_unpack(entries[: len(entries) // 24 * 24]):
        name = wanted.get(st_name)
        if name is None or shndx == 0:      # SHN_UNDEF: a reference, not a definition
            continue
        bound_global = (info >> 4) in (1, 2)  # STB_GLOBAL, STB_WEAK win over a static of the same name
        if name not in out or (bound_global and not is_global[name]):
            out[name], is_global[name] = value, bound_global
    return out


def link_addresses(path: str, names: tuple[str, ...] = KERNEL_NAMES) -> dict[str, int]:
    """{name: st_value} for the `names` defined in `path`'s .symtab (absent names left out)."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    return dict(_scan(os.path.realpath(path), st.st_size, st.st_mtime_ns, tuple(names)))


@functools.lru_cache(maxsize=4)
def _text_instructions(path: str, size: int, mtime_ns: int, bits: int) -> tuple[tuple[int, int], ...]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    from gdb_rkvm.arch.smccc import conduit_instructions
    out = []
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in elf.iter_sections():
                # SHF_EXECINSTR; never .init/.exit text: freed after boot, a breakpoint there would write into
                # whatever the memory holds next
                name = section.name
                if section["sh_type"] == "SHT_PROGBITS" and section["sh_flags"] & 0x4 and section["sh_size"] \
                        and "init" not in name and "exit" not in name:
                    out += conduit_instructions(section.data(), section["sh_addr"], bits)
    except (OSError, ELFError, ValueError):
        return ()
    return tuple(out)


def conduit_sites(path: str, bits: int) -> list[tuple[int, int]]:
    """(link address, imm16) of the SMC (or HVC) instructions in `path`'s executable sections (not the
    init/exit ones), cached by file identity."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    return list(_text_instructions(os.path.realpath(path), st.st_size, st.st_mtime_ns, bits))

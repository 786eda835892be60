"""An AArch64 ELF as the EL2 lint sees it: sections, symbols, mapping symbols ($x code / $d data),
relocations resolved to what they point at, and the code ranges that get copied.

Works on relocatable objects (.o), kernel modules (.ko, relocatable too) and linked ELFs (with
relocations when linked with --emit-relocs/-q). Offsets are from the start of their section.
"""

import bisect
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_RELOC_TYPE_AARCH64
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.el2lint.text import printable

_RELOC_NAMES = {v: k for k, v in ENUM_RELOC_TYPE_AARCH64.items()}
_MAPPING = ("$x", "$d")
VECTOR_TABLE_ALIGN = 0x800


@dataclass(frozen=True)
class Section:
    index: int
    name: str            # printable
    addr: int
    size: int
    align: int
    executable: bool
    allocated: bool
    nobits: bool


@dataclass(frozen=True)
class Symbol:
    raw_name: str
    name: str            # printable
    value: int           # st_value
    size: int
    type: str            # STT_*
    bind: str            # STB_*
    shndx: int | str     # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON

    @property
    def defined_in_section(self) -> bool:
        return isinstance(self.shndx, int) and self.shndx > 0


@dataclass(frozen=True)
class Target:
    """What a relocation or a PC-relative operand points at."""
    kind: str                       # section | undefined | absolute
    name: str                       # for the reader: 'printk', 'rkvm_stub_version', '.data+0x10'
    section: int | None = None
    offset: int | None = None       # in `section`


@dataclass(frozen=True)
class Reloc:
    offset: int          # in the section it patches
    type: str            # R_AARCH64_*
    symbol: str          # printable name of the symbol (or section) it is against
    addend: int
    target: Target


@dataclass(frozen=True)
class CodeRange:
    """Bytes [start, end) of one section: what the module copies and runs at EL2."""
    section: int
    section_name: str
    start: int
    end: int
    how: str             # how the range was chosen, for the report

    def contains(self, section: int | None, offset: int | None) -> bool:
        return section == self.section and offset is not None and self.start <= offset < self.end


@dataclass
class ElfImage:
    path: Path
    kind: str                                   # object | module | linked
    entry: int | None
    sections: dict = field(default_factory=dict)         # index -> Section
    symbols: list = field(default_factory=list)          # [Symbol]
    mapping: dict = field(default_factory=dict)          # section -> sorted [(offset, 'x'|'d')]
    relocs: dict = field(default_factory=dict)           # section -> {offset: Reloc}
    data: dict = field(default_factory=dict)             # section -> bytes
    has_relocations: bool = False
    _named: dict = field(default_factory=dict)           # section -> (sorted offsets, [Symbol])
    file_size: int = 0

    # --- naming ---

    def section_symbols(self, section: int) -> tuple[list[int], list[Symbol]]:
        """Symbols defined in `section` that name places (no mapping, section or file symbols),
        sorted by offset; at one offset the most specific (a function, a global) comes last."""
        if section not in self._named:
            sec = self.sections[section]
            rank = {"STT_FUNC": 2, "STT_OBJECT": 1}
            syms = sorted((s for s in self.symbols if s.shndx == section and s.raw_name
                           and s.type in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
                           and not s.raw_name.startswith(("$x", "$d", ".L"))),
                          key=lambda s: (self._offset(sec, s.value),
                                         not s.raw_name.endswith(("_start", "_end", "_begin")),  # section markers
                                         rank.get(s.type, 0), s.bind == "STB_GLOBAL", -len(s.raw_name), s.raw_name))
            self._named[section] = ([self._offset(sec, s.value) for s in syms], syms)
        return self._named[section]

    def _offset(self, sec: Section, value: int) -> int:
        return value if self.kind != "linked" else value - sec.addr

    def symbol_offset(self, sym: Symbol) -> int:
        return self._offset(self.sections[sym.shndx], sym.value)

    def name_at(self, section: int, offset: int) -> str:
        """'symbol+0x10' for a place in a section, or 'section+0x10' when no symbol precedes it."""
        offsets, syms = self.section_symbols(section)
        i = bisect.bisect_right(offsets, offset) - 1
        if i < 0:
            return f"{self.sections[section].name}+{offset:#x}"
        delta = offset - offsets[i]
        return syms[i].name + (f"+{delta:#x}" if delta else "")

    def exact_symbol(self, section: int, offset: int) -> str | None:
        offsets, syms = self.section_symbols(section)
        i = bisect.bisect_right(offsets, offset) - 1
        return syms[i].name if i >= 0 and offsets[i] == offset else None

    def symbols_between(self, section: int, start: int, end: int) -> list[tuple[int, Symbol]]:
        offsets, syms = self.section_symbols(section)
        return [(o, s) for o, s in zip(offsets, syms, strict=True) if start <= o < end]

    def next_symbol_after(self, section: int, offset: int, limit: int) -> int:
        offsets, _ = self.section_symbols(section)
        i = bisect.bisect_right(offsets, offset)
        return min(offsets[i], limit) if i < len(offsets) else limit

    # --- code or data ---

    def is_data(self, section: int, offset: int) -> bool:
        """Whether the mapping symbols mark this byte as data ($d). No mapping symbols: code."""
        marks = self.mapping.get(section)
        if not marks:
            return False
        i = bisect.bisect_right(marks, (offset, "~")) - 1
        return i >= 0 and marks[i][1] == "d"

    def section_at_address(self, addr: int) -> tuple[int, int] | None:
        """(section, offset) of a link address in a linked ELF."""
        for sec in self.sections.values():
            if sec.allocated and sec.size and sec.addr <= addr < sec.addr + sec.size:
                return sec.index, addr - sec.addr
        return None

    def find_symbol(self, name: str) -> Symbol | None:
        best = None
        for s in self.symbols:
            if s.raw_name == name and s.defined_in_section:
                if best is None or (s.bind == "STB_GLOBAL" and best.bind != "STB_GLOBAL"):
                    best = s
        return best

    def close_names(self, name: str) -> list[str]:
        names = sorted({s.raw_name for s in self.symbols if s.defined_in_section and s.raw_name
                        and not s.raw_name.startswith("$")})
        return [printable(n) for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]


def load(path) -> ElfImage:
    """Read `path`; RkvmError (one line) if it is missing, not an ELF, or not AArch64."""
    path = Path(path)
    shown = printable(str(path))
    if not path.exists():
        raise RkvmError(f"{shown}: no such file")
    if not path.is_file():
        raise RkvmError(f"{shown}: not a regular file")
    try:
        with open(path, "rb") as f:
            return _read(path, ELFFile(f))
    except ELFError as e:
        raise RkvmError(f"{shown}: not an ELF file ({printable(str(e))})") from None
    except OSError as e:
        raise RkvmError(f"{shown}: cannot read ({e.strerror})") from None
    except (ConstructError, ValueError, KeyError, IndexError, AssertionError, TypeError, AttributeError,
            MemoryError, OverflowError) as e:
        raise RkvmError(f"{shown}: a damaged ELF file ({printable(str(e)) or type(e).__name__})") from None


def _read(path: Path, elf: ELFFile) -> ElfImage:
    machine = elf.header["e_machine"]
    if machine != "EM_AARCH64":
        raise RkvmError(f"{printable(str(path))}: an ELF for {printable(str(machine))}, not AArch64")
    if elf.elfclass != 64 or not elf.little_endian:
        raise RkvmError(f"{printable(str(path))}: not a 64-bit little-endian AArch64 ELF")
    etype = elf.header["e_type"]
    names = {sec.name for sec in elf.iter_sections()}
    if etype == "ET_REL":
        kind = "module" if ".modinfo" in names or ".gnu.linkonce.this_module" in names else "object"
    else:
        kind = "linked"
    img = ElfImage(path, kind, elf.header["e_entry"] if kind == "linked" else None)
    for i, sec in enumerate(elf.iter_sections()):
        flags = sec["sh_flags"]
        img.sections[i] = Section(i, printable(sec.name), sec["sh_addr"], sec["sh_size"], sec["sh_addralign"] or 1,
                                  bool(flags & SH_FLAGS.SHF_EXECINSTR), bool(flags & SH_FLAGS.SHF_ALLOC),
                                  sec["sh_type"] == "SHT_NOBITS")
    file_size = elf.stream.seek(0, 2)
    img.file_size = file_size
    symtab = elf.get_section_by_name(".symtab")
    raw_syms = list(symtab.iter_symbols()) if isinstance(symtab, SymbolTableSection) else []
    for s in raw_syms:
        shndx = s["st_shndx"]
        if isinstance(shndx, int) and shndx not in img.sections:
            shndx = "SHN_UNDEF"   # a damaged index: treat the symbol as defined nowhere
        img.symbols.append(Symbol(s.name, printable(s.name), s["st_value"], s["st_size"], s["st_info"]["type"],
                                  s["st_info"]["bind"], shndx))
    for s in img.symbols:
        if s.raw_name.startswith(_MAPPING) and s.defined_in_section and s.shndx in img.sections:
            img.mapping.setdefault(s.shndx, []).append((img.symbol_offset(s), s.raw_name[1]))
    for marks in img.mapping.values():
        marks.sort()
    for sec in elf.iter_sections():
        if not isinstance(sec, RelocationSection):
            continue
        target_index = sec["sh_info"]
        if kind == "linked" and not target_index:  # .rela.dyn: by address
            target_index = None
        elif target_index not in img.sections or img.sections[target_index].name.startswith(".debug"):
            continue
        rsyms = elf.get_section(sec["sh_link"]) if sec["sh_link"] else None
        if not isinstance(rsyms, SymbolTableSection):
            rsyms = None
        for rel in sec.iter_relocations():
            _add_reloc(img, rsyms, target_index, rel)
    img.has_relocations = any(img.relocs.values())
    return img


def _symbol_target(img: ElfImage, rsym, addend: int) -> tuple[str, Target]:
    shndx = rsym["st_shndx"]
    stype = rsym["st_info"]["type"]
    if stype == "STT_SECTION" and isinstance(shndx, int):
        sec = img.sections[shndx]
        off = addend if img.kind != "linked" else rsym["st_value"] + addend - sec.addr
        return sec.name, Target("section", img.name_at(shndx, off), shndx, off)
    name = printable(rsym.name)
    if shndx == "SHN_UNDEF":
        return name, Target("undefined", name + (f"{addend:+#x}" if addend else ""))
    if shndx == "SHN_ABS" or not isinstance(shndx, int):
        return name, Target("absolute", f"{name} ({rsym['st_value'] + addend:#x})")
    sec = img.sections[shndx]
    off = (rsym["st_value"] if img.kind != "linked" else rsym["st_value"] - sec.addr) + addend
    return name, Target("section", img.name_at(shndx, off), shndx, off)


def _add_reloc(img: ElfImage, rsyms, target_index, rel) -> None:
    rtype = _RELOC_NAMES.get(rel["r_info_type"], f"R_AARCH64_{rel['r_info_type']}")
    if rtype == "R_AARCH64_NONE":
        return
    addend = rel["r_addend"] if rel.is_RELA() else 0
    where = rel["r_offset"]
    if target_index is None:
        loc = img.section_at_address(where)
        if loc is None:
            return
        section, offset = loc
    else:
        section = target_index
        offset = where - img.sections[section].addr if img.kind == "linked" else where
    symidx = rel["r_info_sym"]
    if symidx and rsyms is not None:
        name, target = _symbol_target(img, rsyms.get_symbol(symidx), addend)
    elif rtype == "R_AARCH64_RELATIVE" and img.kind == "linked":
        loc = img.section_at_address(addend)
        name = "(load address)"
        target = (Target("section", img.name_at(*loc), *loc) if loc else Target("absolute", f"{addend:#x}"))
    else:
        name, target = "", Target("absolute", f"{addend:#x}")
    img.relocs.setdefault(section, {})[offset] = Reloc(offset, rtype, name, addend, target)


def parse_symbol_spec(img: ElfImage, spec: str) -> CodeRange:
    """START[:END] -> a CodeRange. END is a symbol or +LENGTH; without it the range runs to START's
    st_size if it has one, else to the end of START's section."""
    start_name, end_spec = spec, None
    if img.find_symbol(spec) is None and ":" in spec:
        start_name, end_spec = spec.split(":", 1)
    start = _symbol(img, start_name)
    sec = img.sections[start.shndx]
    s_off = img.symbol_offset(start)
    if end_spec is None:
        if start.size:
            e_off, how = s_off + start.size, f"{start.name} ({start.size:#x} bytes, its st_size)"
        else:
            e_off, how = sec.size, f"{start.name} to the end of {sec.name}"
    elif end_spec.startswith("+"):
        try:
            length = int(end_spec[1:].replace("_", ""), 0)
        except ValueError:
            raise RkvmError(f"--symbol {printable(spec)}: '{printable(end_spec)}' is not a +LENGTH") from None
        e_off, how = s_off + length, f"{start.name}{end_spec}"
    else:
        end = _symbol(img, end_spec)
        if end.shndx != start.shndx:
            raise RkvmError(f"--symbol {printable(spec)}: {start.name} is in {sec.name} but {end.name} is in "
                            f"{img.sections[end.shndx].name}")
        e_off, how = img.symbol_offset(end), f"{start.name} to {end.name}"
    if e_off <= s_off:
        raise RkvmError(f"--symbol {printable(spec)}: the range is empty (end {e_off:#x} <= start {s_off:#x})")
    if e_off > sec.size:
        raise RkvmError(f"--symbol {printable(spec)}: the range ends at {e_off:#x}, past the end of {sec.name} "
                        f"({sec.size:#x} bytes)")
    if sec.nobits:
        raise RkvmError(f"--symbol {printable(spec)}: {sec.name} holds no bytes in the file (NOBITS)")
    return CodeRange(sec.index, sec.name, s_off, e_off, how)


def _symbol(img: ElfImage, name: str) -> Symbol:
    sym = img.find_symbol(name)
    if sym is None:
        close = img.close_names(name)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RkvmError(f"no symbol '{printable(name)}' defined in {printable(str(img.path))}{hint}")
    return sym


_KERNEL_SECTIONS = (".init.text", ".exit.text", ".text.unlikely", ".text.hot", ".noinstr.text", ".plt", ".text.ftrace")


def default_ranges(img: ElfImage) -> list[CodeRange]:
    """The code to lint when no --symbol is given.

    An object or a linked ELF: every executable section with bytes. A kernel module holds EL1 code
    too, so only its executable sections aligned for a vector table (2 KiB) are taken; if it has
    none, the user must say where the EL2 code is.
    """
    execs = [s for s in img.sections.values() if s.executable and s.size and not s.nobits]
    if img.kind == "module":
        aligned = [s for s in execs if s.align >= VECTOR_TABLE_ALIGN and not s.name.startswith(_KERNEL_SECTIONS)]
        if not aligned:
            raise RkvmError(f"{printable(str(img.path))} is a kernel module and none of its code sections is 2 KiB "
                            "aligned like a vector table: give the EL2 code's range with --symbol START[:END]")
        return [CodeRange(s.index, s.name, 0, s.size, f"section {s.name} (2 KiB aligned)") for s in aligned]
    if not execs:
        raise RkvmError(f"{printable(str(img.path))} has no code (no executable section with bytes)")
    return [CodeRange(s.index, s.name, 0, s.size, f"section {s.name}") for s in execs]


def load_data(img: ElfImage, ranges: list[CodeRange]) -> None:
    """Read the bytes of the sections the ranges cover (kept out of load() so a large .ko's data
    sections are never read)."""
    try:
        with open(img.path, "rb") as f:
            elf = ELFFile(f)
            for r in ranges:
                if r.section in img.data:
                    continue
                sec = elf.get_section(r.section)
                if sec["sh_offset"] + sec["sh_size"] > img.file_size or sec["sh_flags"] & SH_FLAGS.SHF_COMPRESSED:
                    raise ValueError(f"its bytes ({sec['sh_size']:#x} at {sec['sh_offset']:#x}) are not in the file")
                img.data[r.section] = sec.data()
                if len(img.data[r.section]) < r.end:
                    raise ValueError("the section is shorter than its header says")
    except (ELFError, ConstructError, OSError, ValueError, KeyError, IndexError, AttributeError, MemoryError) as e:
        raise RkvmError(f"{printable(str(img.path))}: cannot read {img.sections[r.section].name} "
                        f"({printable(str(e))})") from None

"""Check an ELF before handing it to GDB: present, an ELF, AArch64. One clear line otherwise."""

from pathlib import Path

from gdb_rkvm.errors import RkvmError

EM_AARCH64 = 183


def _is_aarch64_header(path: Path) -> bool:
    """The ELF header says AArch64 (e_ident magic, e_machine in the file's byte order): the common case,
    decided without importing pyelftools (which costs GDB's start some 25 ms)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return False
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big") == EM_AARCH64


def check_aarch64_elf(path: Path, what: str = "ELF") -> None:
    """Raise RkvmError unless `path` is an AArch64 ELF file."""
    path = Path(path)
    if not path.is_file():
        raise RkvmError(f"{what} not found: {path}")
    if _is_aarch64_header(path):
        return
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(path, "rb") as f:
            machine = ELFFile(f).header["e_machine"]
    except ELFError:
        raise RkvmError(f"{path} is not an ELF file") from None
    if machine != "EM_AARCH64":
        raise RkvmError(f"{path} is an ELF for {machine}, not AArch64")


def check_vmlinux(path: Path) -> None:
    check_aarch64_elf(path, "vmlinux")


# AArch64 relocation types that are PC-relative or section-relative only (ELF for the Arm 64-bit
# Architecture, "Relocation types"); anything else writes an absolute address into the code.
PC_RELATIVE_RELOCATIONS = {
    "R_AARCH64_NONE", "R_AARCH64_PREL64", "R_AARCH64_PREL32", "R_AARCH64_PREL16",
    "R_AARCH64_LD_PREL_LO19", "R_AARCH64_ADR_PREL_LO21", "R_AARCH64_TSTBR14", "R_AARCH64_CONDBR19",
    "R_AARCH64_JUMP26", "R_AARCH64_CALL26",
}


def absolute_relocations(path: Path) -> list[tuple[str, int, str]]:
    """(section, offset, type) of every relocation in an ELF object that is not PC-relative.

    A position-independent EL2 stub, copied to a page chosen at run time, must have none.
    Debug sections are skipped: they are for GDB, never loaded.
    """
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_RELOC_TYPE_AARCH64
    from elftools.elf.relocation import RelocationSection

    names = {v: k for k, v in ENUM_RELOC_TYPE_AARCH64.items()}
    out = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not isinstance(sec, RelocationSection):
                continue
            target = elf.get_section(sec["sh_info"]).name if sec["sh_info"] else ""
            if target.startswith(".debug"):
                continue
            for rel in sec.iter_relocations():
                kind = names.get(rel["r_info_type"], str(rel["r_info_type"]))
                if kind not in PC_RELATIVE_RELOCATIONS:
                    out.append((target, rel["r_offset"], kind))
    return out

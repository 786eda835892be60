"""Check an ELF before handing it to GDB: present, an ELF, AArch64. One clear line otherwise."""

from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import RkvmError


def check_aarch64_elf(path: Path, what: str = "ELF") -> None:
    """Raise RkvmError unless `path` is an AArch64 ELF file."""
    path = Path(path)
    if not path.is_file():
        raise RkvmError(f"{what} not found: {path}")
    try:
        with open(path, "rb") as f:
            machine = ELFFile(f).header["e_machine"]
    except ELFError:
        raise RkvmError(f"{path} is not an ELF file") from None
    if machine != "EM_AARCH64":
        raise RkvmError(f"{path} is an ELF for {machine}, not AArch64")


def check_vmlinux(path: Path) -> None:
    check_aarch64_elf(path, "vmlinux")

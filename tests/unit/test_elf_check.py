"""ELF checks before GDB sees a file: missing, not an ELF, or not AArch64 are one clear line each."""

import struct

import pytest

from gdb_rkvm.model.elf_check import check_aarch64_elf
from gdb_rkvm.errors import RkvmError


def elf_header(e_machine: int) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)


def test_aarch64_elf_passes(tmp_path):
    p = tmp_path / "ok.elf"
    p.write_bytes(elf_header(183))  # EM_AARCH64
    check_aarch64_elf(p)


@pytest.mark.parametrize("content,words", [
    (None, "EL2 code ELF not found"),
    (b"not an elf at all", "is not an ELF file"),
    (elf_header(62), "is an ELF for EM_X86_64, not AArch64"),
    (elf_header(40), "is an ELF for EM_ARM, not AArch64"),
])
def test_bad_files_are_one_line(tmp_path, content, words):
    p = tmp_path / "f.elf"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(RkvmError) as e:
        check_aarch64_elf(p, "EL2 code ELF")
    assert words in str(e.value) and "\n" not in str(e.value)

"""The fast symbol scan agrees with pyelftools on every symbol of a real AArch64 ELF."""

from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_rkvm.model import elf_symtab
from gdb_rkvm.model.stub_symbols import STUB_ELF


def _reference():
    assert STUB_ELF.is_file(), "stub not built: run 'make stub'"
    with open(STUB_ELF, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        ref = {}
        for sym in symtab.iter_symbols():
            if sym.name and sym["st_shndx"] != "SHN_UNDEF":
                glob = sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                if sym.name not in ref or (glob and not ref[sym.name][1]):
                    ref[sym.name] = (sym["st_value"], glob)
        return {k: v for k, (v, _) in ref.items()}


REFERENCE = _reference()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(sorted(REFERENCE)), min_size=1, max_size=6, unique=True))
def test_scan_matches_pyelftools(names):
    found = elf_symtab.link_addresses(str(STUB_ELF), tuple(names))
    assert found == {n: REFERENCE[n] for n in names}


def test_absent_names_and_bad_files_give_nothing(tmp_path):
    assert elf_symtab.link_addresses(str(STUB_ELF), ("no_such_symbol_here",)) == {}
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an elf")
    assert elf_symtab.link_addresses(str(junk)) == {}
    assert elf_symtab.link_addresses(str(tmp_path / "missing")) == {}


def test_shared_string_tails_are_found():
    # "vec" names that end another symbol's name ("..._sync" tails) are matched at their own offset
    tails = [n for n in REFERENCE if any(o != n and o.endswith(n) for o in REFERENCE)]
    for name in tails[:10]:
        assert elf_symtab.link_addresses(str(STUB_ELF), (name,)) == {name: REFERENCE[name]}

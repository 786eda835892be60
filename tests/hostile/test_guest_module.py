"""A malicious guest module (struct module in guest memory) against module symbol loading, with a fake
`gdb`: what would reach gdb.execute, and that every failure is one line."""

import importlib

import pytest

from .fakegdb import Value, char_array, pointer
from gdb_rkvm.model.translation import Regime, Translation

NAME_AT, STRINGS_AT = 0x1000, 0x2000
INJECTED = ".text.x 0x1\nshell touch /tmp/pwned;"


class Lazy:
    """sect_attrs->attrs[] of any length, every entry the same (counts how many were read)."""

    def __init__(self, entry):
        self.entry, self.reads = entry, 0

    def __getitem__(self, n):
        self.reads += 1
        return self.entry


def make_module(gdb, sections: list[tuple[bytes, int]], name: bytes = b"rkvm", nsections=None, attrs=None,
                text_size=0x4000):
    mem = gdb.memory
    mem.write(NAME_AT, name + b"\0")
    entries, at = [], STRINGS_AT
    for sec, addr in sections:
        mem.write(at, sec + b"\0")
        entries.append({"battr": {"attr": {"name": pointer(at)}}, "address": addr})
        at += len(sec) + 1
    attrs = attrs if attrs is not None else entries
    sect = Value({"nsections": len(entries) if nsections is None else nsections, "attrs": Value(attrs)})
    mod = {"name": char_array(NAME_AT, 56), "sect_attrs": pointer(0x9000, sect),
           "mem": [{"base": 0xFFFF_8000_7800_0000 + (k << 24), "size": text_size if k == 0 else 0} for k in range(7)]}
    return Value(mod)


@pytest.fixture
def ms(fake_gdb, tmp_path):
    (tmp_path / "rkvm.ko").write_bytes(b"")
    module_symbols = importlib.import_module("gdb_rkvm.live.module_symbols")
    return module_symbols, fake_gdb, [str(tmp_path)]


def test_section_name_with_a_newline_never_reaches_gdb(ms):
    module_symbols, gdb, dirs = ms
    mod = make_module(gdb, [(b".text", 0xFFFF_8000_7800_0000), (b".data", 0xFFFF_8000_7801_0000),
                            (INJECTED.encode(), 0xFFFF_8000_7802_0000)])
    line = module_symbols.load_module(mod, dirs)
    assert len(gdb.executed) == 1
    cmd = gdb.executed[0]
    assert "\n" not in cmd and "pwned" not in cmd and "shell" not in cmd
    assert cmd.startswith("add-symbol-file ") and '-s ".data" 0xffff800078010000' in cmd
    assert "refused" in line and "\\x0ashell touch /tmp/pwned;" in line   # shown, escaped, on its own line
    assert all("\n" not in x for x in line.split("\n")) and len(line.split("\n")) == 2


def test_ko_path_with_spaces_is_quoted(fake_gdb, tmp_path):
    d = tmp_path / "dir with space"
    d.mkdir()
    (d / "rkvm.ko").write_bytes(b"")
    module_symbols = importlib.import_module("gdb_rkvm.live.module_symbols")
    module_symbols.load_module(make_module(fake_gdb, [(b".text", 0x1000)]), [str(d)])
    assert fake_gdb.executed == [f'add-symbol-file "{d}/rkvm.ko" 0x1000']


def test_module_name_with_escape_sequences_and_bad_utf8_is_one_escaped_line(ms):
    module_symbols, gdb, dirs = ms
    mod = make_module(gdb, [(b".text", 0x1000)], name=b"evil\x1b]0;pwned\x07\xff")
    line = module_symbols.load_module(mod, dirs)   # Value.string() raised UnicodeDecodeError here
    assert line.startswith("rkvm: module evil\\x1b]0;pwned\\x07\ufffd: no ")
    assert "\x1b" not in line and "\x07" not in line and gdb.executed == []


def test_huge_nsections_reads_a_bounded_number(ms):
    module_symbols, gdb, dirs = ms
    gdb.memory.write(STRINGS_AT, b".bss\0")
    lazy = Lazy(Value({"battr": {"attr": {"name": pointer(STRINGS_AT)}}, "address": 0x5000}))
    mod = make_module(gdb, [], nsections=(1 << 32) - 1, attrs=lazy)
    line = module_symbols.load_module(mod, dirs)
    assert lazy.reads == module_symbols.MAX_SECTIONS
    assert f"only the first {module_symbols.MAX_SECTIONS} read" in line and len(gdb.executed) == 1


def test_unterminated_section_name_is_read_bounded(ms):
    module_symbols, gdb, dirs = ms
    gdb.memory.write(STRINGS_AT, b"A" * 100_000)          # no NUL for 100 kB
    mod = make_module(gdb, [])
    mod.v["sect_attrs"].target.v["nsections"] = 1
    mod.v["sect_attrs"].target.v["attrs"] = Value([{"battr": {"attr": {"name": pointer(STRINGS_AT)}},
                                                     "address": 1}])
    gdb.memory.reads = 0
    module_symbols.load_module(mod, dirs)
    assert gdb.memory.reads <= 2      # 256 bytes at most, page by page


def test_stop_handler_errors_are_one_line(ms, monkeypatch):
    module_symbols, gdb, dirs = ms
    bp = module_symbols.ModuleLoadBreakpoint.__new__(module_symbols.ModuleLoadBreakpoint)
    bp.dirs = dirs

    def corrupt(expr):
        raise OverflowError("int too big to convert")
    monkeypatch.setattr(gdb, "parse_and_eval", corrupt)
    assert bp.check() is False
    assert gdb.written == ["rkvm: could not load module symbols: int too big to convert\n"]


def test_module_claiming_4_gib_is_not_walked_page_by_page(fake_gdb, monkeypatch):
    vbar_watch = importlib.import_module("gdb_rkvm.live.vbar_watch")
    module_symbols = importlib.import_module("gdb_rkvm.live.module_symbols")
    mod = make_module(fake_gdb, [], text_size=1 << 32)
    monkeypatch.setattr(module_symbols, "loaded_modules", lambda: [mod])
    walks = []
    monkeypatch.setattr(vbar_watch.translation, "translate", lambda va, *a, **k: walks.append(va) or
                        _translation(va, 0x4000_0000))
    found, notes = vbar_watch.module_page_of(0x4123_4000)
    assert found is None and walks == []
    assert notes == ["module rkvm .text: 0x100000000 bytes not searched (larger than 0x4000000)"]


def _translation(va, pa, fault=None):
    return Translation(va, Regime("el1", 1), None, pa, fault=fault)


def test_module_search_has_a_total_budget(fake_gdb, monkeypatch):
    vbar_watch = importlib.import_module("gdb_rkvm.live.vbar_watch")
    module_symbols = importlib.import_module("gdb_rkvm.live.module_symbols")
    mods = [make_module(fake_gdb, [], text_size=32 << 20) for _ in range(5)]   # 160 MiB in all
    monkeypatch.setattr(module_symbols, "loaded_modules", lambda: mods)
    walks = []
    monkeypatch.setattr(vbar_watch.translation, "translate", lambda va, *a, **k: walks.append(va) or
                        _translation(va, None, "translation fault"))
    found, notes = vbar_watch.module_page_of(0x4123_4000)
    assert len(walks) == vbar_watch.MAX_MODULE_SEARCH // 4096
    assert len(notes) == 3 and all("search budget spent" in n for n in notes)

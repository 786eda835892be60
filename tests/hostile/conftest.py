"""The hostile suite: a fake `gdb` for unit-level attacks on gdb_rkvm.live code."""

import sys

import pytest

from . import fakegdb

_TARGET_MODULES = ("gdb_rkvm.live", "gdb_rkvm.commands", "gdb_rkvm.gdb_boot")


@pytest.fixture
def fake_gdb(monkeypatch):
    """A fake `gdb` module (fakegdb.make) over an empty fakegdb.Memory (as .memory); gdb_rkvm.live
    modules imported during the test bind to it and are forgotten afterwards."""
    memory = fakegdb.Memory()
    before = set(sys.modules)
    fake = fakegdb.install(monkeypatch, memory)
    fake.memory = memory
    yield fake
    for name in set(sys.modules) - before:
        if name.startswith(_TARGET_MODULES):
            del sys.modules[name]

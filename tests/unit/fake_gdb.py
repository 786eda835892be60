"""A stand-in `gdb` module, so the live layer's pure parts and the commands' format() import
outside GDB. It does nothing: a test that needs a register or a breakpoint to act is an e2e test."""

import sys
import types


class _Inert:
    """Any attribute, any call: nothing happens (GDB's event registries, gdb.Command...)."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Inert()

    def __call__(self, *args, **kwargs):
        return _Inert()


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("_"):     # __file__, __path__...: tools that scan sys.modules ask these
            raise AttributeError(name)
        if name.isupper():          # COMMAND_USER, PARAM_BOOLEAN, COMPLETE_EXPRESSION...
            return 0
        return _Inert


def install() -> types.ModuleType:
    """Put the stand-in in sys.modules (unless a real or earlier `gdb` is there) and return it."""
    if "gdb" not in sys.modules:
        fake = _Module("gdb")
        fake.error = type("error", (RuntimeError,), {})
        fake.GdbError = type("GdbError", (RuntimeError,), {})
        fake.MemoryError = type("MemoryError", (fake.error,), {})
        fake.events = _Inert()
        for name in ("Command", "Breakpoint", "Parameter", "Function", "Value", "BreakpointEvent", "Frame"):
            setattr(fake, name, type(name, (_Inert,), {}))
        sys.modules["gdb"] = fake
    return sys.modules["gdb"]

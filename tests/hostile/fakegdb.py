"""A stand-in for GDB's `gdb` module, just enough to run gdb_rkvm.live code on a fake guest.

Guest memory is a sparse byte store; a struct is a nested dict wrapped in Value, a `char *` a Value
of type PTR holding an address, a `char[N]` a Value of type ARRAY with an address in that memory.
Every gdb.execute is recorded (the tests check what would have reached GDB's command line).
"""

import sys
import types

TYPE_CODE_PTR, TYPE_CODE_ARRAY, TYPE_CODE_STRUCT, TYPE_CODE_INT = 1, 2, 3, 8


class Type:
    def __init__(self, code, sizeof=8):
        self.code, self.sizeof = code, sizeof

    def strip_typedefs(self):
        return self


class Value:
    def __init__(self, v, type=None, address=None):  # noqa: A002  (GDB's own keyword)
        self.v = v
        self.type = type or (Type(TYPE_CODE_STRUCT) if isinstance(v, dict) else Type(TYPE_CODE_INT))
        self.address = None if address is None else Value(address)

    def __getitem__(self, key):
        item = self.v[key]
        return item if isinstance(item, Value) else Value(item)

    def __int__(self):
        return int(self.v)

    def __index__(self):
        return int(self.v)

    def dereference(self):
        return self.target

    def string(self, encoding=None, errors=None, length=-1):
        raise AssertionError("guest strings must not be read with Value.string()")


def pointer(addr: int, target=None) -> Value:
    v = Value(addr, Type(TYPE_CODE_PTR))
    v.target = target
    return v


def char_array(addr: int, size: int) -> Value:
    return Value(None, Type(TYPE_CODE_ARRAY, size), address=addr)


class _FakeModule(types.ModuleType):
    """Names the tests do not need (types used in annotations...) are plain placeholder classes."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = type(name, (), {})
        setattr(self, name, placeholder)
        return placeholder


def make(memory: "Memory"):
    """A fresh fake `gdb` module over `memory`; .executed lists the commands, .written the output."""
    gdb = _FakeModule("gdb")

    class error(RuntimeError):  # noqa: N801
        pass

    class MemoryError_(error):
        pass

    class GdbError(Exception):
        pass

    class _Registry:
        def connect(self, fn):
            pass

        def disconnect(self, fn):
            pass

    class Breakpoint:
        def __init__(self, *args, **kwargs):
            pass

    class Command:
        def __init__(self, *args, **kwargs):
            pass

    class Function:
        def __init__(self, *args, **kwargs):
            pass

    class Inferior:
        def read_memory(self, addr, size):
            if addr + size > 1 << 64:
                raise OverflowError("int too big to convert")  # as GDB does past 2^64
            try:
                return memoryview(memory.read(addr, size))
            except KeyError:
                raise MemoryError_(f"Cannot access memory at address {addr:#x}") from None

    gdb.error, gdb.MemoryError, gdb.GdbError = error, MemoryError_, GdbError
    gdb.Breakpoint, gdb.Command, gdb.Function = Breakpoint, Command, Function
    gdb.COMMAND_USER, gdb.COMPLETE_NONE = 13, 0
    gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_STRUCT = TYPE_CODE_PTR, TYPE_CODE_ARRAY, TYPE_CODE_STRUCT
    gdb.TYPE_CODE_INT = TYPE_CODE_INT
    gdb.events = types.SimpleNamespace(cont=_Registry(), stop=_Registry(), memory_changed=_Registry(),
                                       register_changed=_Registry(), exited=_Registry())
    gdb.executed, gdb.written = [], []
    inferior = Inferior()
    gdb.selected_inferior = lambda: inferior

    def execute(cmd, to_string=False, from_tty=False):
        gdb.executed.append(cmd)
        return ""

    def parse_and_eval(expr):
        raise error(f"No symbol table is loaded (fake: {expr})")

    gdb.execute, gdb.parse_and_eval = execute, parse_and_eval
    gdb.objfiles = lambda: []          # no symbol files loaded yet
    gdb.write = lambda text, *a: gdb.written.append(text)
    gdb.Value = Value
    return gdb


class Memory:
    """Sparse guest memory: bytes by address, zero where nothing was written; `unmapped` ranges fault."""

    def __init__(self):
        self.bytes: dict[int, int] = {}
        self.reads = 0
        self.unmapped: list[tuple[int, int]] = []

    def write(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.bytes[addr + i] = b

    def read(self, addr: int, size: int) -> bytes:
        self.reads += 1
        if any(s < addr + size and addr < e for s, e in self.unmapped):
            raise KeyError(addr)
        return bytes(self.bytes.get(addr + i, 0) for i in range(size))


def install(monkeypatch, memory: Memory):
    """Put a fake `gdb` in sys.modules and forget gdb_rkvm modules that import it, so the code under
    test binds to the fake; returns the fake. The caller's monkeypatch undoes it."""
    fake = make(memory)
    monkeypatch.setitem(sys.modules, "gdb", fake)
    for name in [n for n in sys.modules if n.startswith(("gdb_rkvm.live", "gdb_rkvm.commands"))]:
        monkeypatch.delitem(sys.modules, name)
    return fake

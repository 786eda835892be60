"""What every `rkvm` command shares: argument parsing, preconditions, one-line errors, --json.

Preconditions are stated once per command class with @only_when(...), as pwndbg does, so
"cannot run here" is a single sentence said in one place.
"""

import argparse
import json

import gdb

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.translation import Translation
from gdb_rkvm.live import symbol_files
from gdb_rkvm.live.gdb_state import STATE, command_settings
from gdb_rkvm.commands import completion, settings, style
from gdb_rkvm.model import records
from gdb_rkvm.model.guest_text import escape


class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and calling exit() (which would kill GDB)."""

    def error(self, message):
        raise _ArgError(message)

    def exit(self, status=0, message=None):
        raise _ArgError(message or "")


class Precondition:
    def __init__(self, check, name):
        self.check, self.name = check, name


def _has_session():
    if STATE.session is None:
        raise RkvmError("no session: start QEMU with 'rkvm up', then run GDB with 'gdb -x rkvm.py'")


def _connected():
    inferior = gdb.selected_inferior()
    if inferior is None or inferior.pid == 0 or not inferior.threads():
        raise RkvmError("not connected to QEMU's gdbstub (is the session up? 'rkvm status' tells)")


def _stopped():
    _connected()
    thread = gdb.selected_thread()
    if thread is not None and thread.is_running():
        raise RkvmError("the target is running: interrupt it first (Ctrl-C or 'interrupt')")


def _cpu_arg(value: str) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a CPU number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a CPU number")
    return n


def _cpu_numbers() -> list[str]:
    """The vCPU numbers of the connected target (GDB thread N is CPU N-1), for completion."""
    inferior = gdb.selected_inferior()
    if inferior is None or inferior.pid == 0:
        return []
    return [str(th.num - 1) for th in inferior.threads()]


def parse_int(text: str, what: str = "value") -> int:
    """An integer in C syntax (0x.., 0b.., decimal), or RkvmError naming what was expected."""
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise RkvmError(f"'{text}' is not a valid {what} (expected a number like 0x5a000042)") from None


def _kernel_symbols():
    if gdb.lookup_global_symbol("start_kernel") is None:
        raise RkvmError("no kernel symbols: load vmlinux ('file PATH/vmlinux', or the profile's vmlinux=)")


SESSION = Precondition(_has_session, "session")
CONNECTED = Precondition(_connected, "connected")
STOPPED = Precondition(_stopped, "stopped")
KERNEL_SYMBOLS = Precondition(_kernel_symbols, "kernel symbols")


def only_when(*conditions):
    """Class decorator: the command runs only when every condition holds."""
    def decorate(cls):
        cls.preconditions = tuple(conditions)
        return cls
    return decorate


class RkvmCommand(gdb.Command):
    """Base class. Subclasses set `name`, write the help as their docstring, add_arguments() and run()."""

    name = ""
    preconditions = ()
    reports_state = True     # adds --json
    explains = False         # adds --explain (a plain sentence per item, for a learner)

    def __init__(self):
        # No completer class: GDB then asks complete() below, which knows the arguments.
        super().__init__(f"rkvm {self.name}", gdb.COMMAND_USER)
        self.parser = _Parser(prog=f"rkvm {self.name}", add_help=False)
        if self.reports_state:
            self.parser.add_argument("--json", action="store_true", help="print JSON")
        if self.explains:
            self.parser.add_argument("--explain", action="store_true", help="explain each item")
        self.add_arguments(self.parser)

    def add_arguments(self, parser):
        pass

    @staticmethod
    def add_cpu_argument(parser):
        completion.completes(
            parser.add_argument("--cpu", type=_cpu_arg, default=None, help="vCPU number (default: selected thread)"),
            _cpu_numbers)

    def complete(self, text, word):
        try:
            found = completion.complete_arguments(self.parser, text)
        except Exception:  # noqa: BLE001  completion must never print a traceback mid-line
            return []
        if found == completion.EXPRESSION:
            return gdb.COMPLETE_EXPRESSION
        if found == completion.FILENAME:
            return gdb.COMPLETE_FILENAME
        return completion.completions_for_word(found, text, word)

    def run(self, args):
        """Return a typed record or dict (printed with --json through records.to_json) or a string; or
        print and return None."""
        raise NotImplementedError

    def format(self, result, args) -> str:
        return str(result)

    def invoke(self, arg, from_tty):
        STATE.in_command = True
        try:
            args = self.parser.parse_args(gdb.string_to_argv(arg))
            if self.explains and settings.enabled("explain"):
                args.explain = True
            symbol_files.after_reload()
            for pre in self.preconditions:
                pre.check()
            with command_settings():
                result = self.run(args)
        except _ArgError as e:
            raise gdb.GdbError(f"rkvm {self.name}: {e} (see 'help rkvm {self.name}')") from None
        except RkvmError as e:
            raise gdb.GdbError(f"rkvm {self.name}: {e}") from None
        except gdb.error as e:  # memory errors, a lost connection...: one line, never a traceback
            raise gdb.GdbError(f"rkvm {self.name}: {e}") from None
        except (ValueError, OverflowError) as e:  # a corrupt guest value GDB or Python cannot take
            raise gdb.GdbError(f"rkvm {self.name}: unexpected guest data: {escape(str(e))}") from None
        finally:
            STATE.in_command = False
            for line in STATE.notices:
                gdb.write(line + "\n")
            STATE.notices.clear()
        if result is None:
            return
        if getattr(args, "json", False):
            gdb.write(json.dumps(records.to_json(result), indent=2, default=_json_default) + "\n")
        else:
            text = self.format(result, args)
            if text:
                gdb.write(style.paint(text.rstrip("\n"), settings.palette()) + "\n")


def _json_default(value):
    if isinstance(value, gdb.Value):
        return int(value)
    if hasattr(value, "to_dict"):  # typed records (live/trap.Trap) keep their published JSON shape
        return value.to_dict()
    return str(value)


def last_caught(catch, missing: str):
    """What a catch (`rkvm hvc catch`, `rkvm exit catch`) last stopped on, or `missing` as the one line."""
    if catch is None or catch.last is None:
        raise RkvmError(missing)
    return catch.last


def check_mapped(tr: Translation) -> int:
    """The PA of a translation, or a one-line error naming the faulting level and descriptor."""
    if not tr.ok:
        raise RkvmError(f"VA {tr.va:#x} is not mapped: {tr.fault}")
    return tr.pa

"""`set rkvm ...` / `show rkvm ...`: what a user may switch. GDB keeps the values (gdb.Parameter)."""

import os

import gdb

from gdb_rkvm.live.gdb_state import rkvm_setting
from gdb_rkvm.commands import style


class _Prefix(gdb.Command):
    def __init__(self, verb):
        super().__init__(f"{verb} rkvm", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, prefix=True)


class _Switch(gdb.Parameter):
    def __init__(self, name, default, set_doc, show_doc, doc):
        self.set_doc, self.show_doc, self.__doc__ = set_doc, show_doc, doc
        super().__init__(f"rkvm {name}", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = default
        self._name = name

    def get_show_string(self, svalue):
        return f"rkvm {self._name} is {svalue}."

    def get_set_string(self):
        return ""


SWITCHES = {
    "vbar-watch": (True, "Set whether VBAR_EL2 is checked on every CPU at each stop.",
                   "Show whether VBAR_EL2 is checked at each stop.",
                   "When on, every stop reads VBAR_EL2 of each vCPU and reports a move (which module or\n"
                   "allocation it points at, the first instructions at +0x400). Off saves a register read\n"
                   "per CPU per stop."),
    "explain": (False, "Set whether commands explain their output by default (as with --explain).",
                "Show whether commands explain by default.",
                "When on, commands that take --explain add their plain-language explanation every time:\n"
                "handy while learning EL2. Example: set rkvm explain on"),
    "style": (True, "Set whether rkvm styles its output like GDB does.",
              "Show whether rkvm styles its output.",
              "When on (and GDB's own 'set style enabled' is on, on a terminal), addresses, symbols\n"
              "and verdicts use GDB's address, function and highlight styles."),
}


def register() -> None:
    _Prefix("set")
    _Prefix("show")
    for name, (default, set_doc, show_doc, doc) in SWITCHES.items():
        _Switch(name, default, set_doc, show_doc, doc)


def enabled(name: str) -> bool:
    """The value of `set rkvm NAME` (its default before the parameters exist)."""
    return rkvm_setting(name, SWITCHES[name][0])


def _gdb_style(name: str) -> str:
    try:
        return style.sgr(str(gdb.parameter(f"style {name} foreground")),
                         str(gdb.parameter(f"style {name} intensity")))
    except (gdb.error, RuntimeError):
        return ""


def palette() -> style.StylePalette:
    """The palette GDB's own style settings give, or an empty one when output is not styled."""
    try:
        on = bool(gdb.parameter("style enabled"))
    except (gdb.error, RuntimeError):
        on = False
    if not (on and enabled("style") and os.isatty(1) and os.environ.get("TERM", "dumb") != "dumb"):
        return style.StylePalette()
    return style.StylePalette(address=_gdb_style("address"), symbol=_gdb_style("function"),
                              verdict=_gdb_style("highlight"), title=_gdb_style("title"))

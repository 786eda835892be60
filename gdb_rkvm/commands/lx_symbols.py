"""`lx-symbols`, the kernel's command, kept compatible but safe next to rkvm.

The kernel's own lx-symbols (scripts/gdb/linux/symbols.py) reloads vmlinux at its link address
(wrong under KASLR: every kernel symbol then misses by the slide) and adds a second
do_init_module breakpoint that loads each module's symbols a second time. This one replaces it
once the kernel's helpers are loaded: same name, same arguments, same output lines.
"""

import os

import gdb

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import module_symbols, symbol_files
from gdb_rkvm.live.gdb_state import STATE, command_settings


class LxSymbols(gdb.Command):
    """(Re-)load symbols of Linux kernel and currently loaded modules (gdb-rkvm's version).

Usage: lx-symbols [MODULE-DIR...]
vmlinux is reloaded at the KASLR slide (when there is one) and every loaded module's .ko, searched
in MODULE-DIRs, the profile's module_dirs and the current directory, is loaded once at its load
address. Modules loaded later get their symbols from rkvm's own do_init_module breakpoint.
Example:
  (gdb) lx-symbols build/module
  loading vmlinux (KASLR slide 0x0)
  rkvm: loaded symbols of rkvm at 0xffff800078ee0000 from build/module/rkvm.ko"""

    def __init__(self):
        super().__init__("lx-symbols", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        try:
            with command_settings():
                self._reload(gdb.string_to_argv(arg))
        except (RkvmError, gdb.error) as e:
            raise gdb.GdbError(f"lx-symbols: {e}") from None

    def _reload(self, dirs):
        for d in [*dirs, os.getcwd()]:
            path = os.path.abspath(os.path.expanduser(d))
            if path not in STATE.module_dirs:
                STATE.module_dirs.append(path)
        vmlinux = STATE.session.vmlinux if STATE.session else None
        slide = symbol_files.wanted_slide()
        if vmlinux is None:
            raise RkvmError("no session vmlinux to reload")
        if slide is None:
            raise RkvmError("the KASLR slide is not known yet (the kernel has not set VBAR_EL1): "
                            "let the guest boot further, then run lx-symbols again")
        gdb.write(f"loading vmlinux (KASLR slide {slide:#x})\n")
        symbol_files.load_vmlinux(vmlinux, slide)
        mods = module_symbols.loaded_modules()
        if not mods:
            gdb.write("no modules found\n")
        for mod in mods:
            gdb.write(module_symbols.load_module(mod) + "\n")


def register_if_kernel_helpers() -> None:
    """Put this lx-symbols in place of the kernel's, if the kernel's helpers are loaded."""
    try:
        gdb.execute("help lx-symbols", to_string=True)
    except gdb.error:
        return
    LxSymbols()

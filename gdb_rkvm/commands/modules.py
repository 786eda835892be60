import gdb

from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live import module_symbols
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.commands.base import KERNEL_SYMBOLS, STOPPED, RkvmCommand, only_when


@only_when(STOPPED, KERNEL_SYMBOLS)
class RkvmModules(RkvmCommand):
    """List the guest's loaded kernel modules; --load adds the symbols of those GDB lacks.

Usage: rkvm modules [--load] [--json]
Modules are searched for in the profile's module_dirs. Symbols also load by themselves when
the kernel runs a module's init (a breakpoint on do_init_module).
Example:
  (gdb) rkvm modules
  rkvm       .text 0xffff800078ee0000  symbols loaded (build/module/rkvm.ko)"""

    name = "modules"

    def add_arguments(self, p):
        p.add_argument("--load", action="store_true")

    def run(self, args):
        out = []
        for mod in module_symbols.loaded_modules():
            name = module_symbols.module_name(mod)
            if args.load and name not in STATE.loaded_modules:
                gdb.write(module_symbols.load_module(mod) + "\n")
            text = int(mod["mem"][module_symbols.MOD_TEXT]["base"])
            ko = STATE.loaded_modules.get(name, (None,))[0]
            out.append({"name": name, "text": text, "symbols": ko})
        return {"modules": out}

    def format(self, r, args):
        if not r["modules"]:
            return "no modules loaded"
        return "\n".join(f"{escape(m['name']):<10} .text {m['text']:#x}  "
                         f"{'symbols loaded (' + m['symbols'] + ')' if m['symbols'] else 'no symbols'}"
                         for m in r["modules"])

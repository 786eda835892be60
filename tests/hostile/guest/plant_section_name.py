# Sourced inside GDB (stopped with rkvm.ko loaded): points one of rkvm's sect_attrs names at a string
# planted in the module's own vmalloc buffer: ".text.x 0x1\nshell touch MARKER;". Before the fix, the
# next add-symbol-file for rkvm ran `shell touch MARKER`.
import os
import struct

import gdb

from gdb_rkvm.live import module_symbols
from gdb_rkvm.live.guest_strings import c_string

marker = os.environ["RKVM_HOSTILE_MARKER"]
mod = next(m for m in module_symbols.loaded_modules() if module_symbols.module_name(m) == "rkvm")
attrs = mod["sect_attrs"].dereference()
names = [c_string(attrs["attrs"][n]["battr"]["attr"]["name"]) for n in range(int(attrs["nsections"]))]
idx = names.index(".data") if ".data" in names else names.index(".rodata")
buf = int(gdb.parse_and_eval("rkvm_debug.vmalloc_buf")) & ((1 << 64) - 1)
inferior = gdb.selected_inferior()
inferior.write_memory(buf, f".text.x 0x1\nshell touch {marker};".encode() + b"\0")
name_field = int(attrs["attrs"][idx]["battr"]["attr"]["name"].address)
inferior.write_memory(name_field, struct.pack("<Q", buf))
gdb.write(f"PLANTED {names[idx]} -> {buf:#x}\n")

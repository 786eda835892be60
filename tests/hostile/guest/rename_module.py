# Sourced inside GDB: rkvm's struct module name becomes "rkvm" + ESC ] 0;pwned BEL + ESC [2J + 0xff.
import gdb

from gdb_rkvm.live import module_symbols

inferior = gdb.selected_inferior()
for mod in module_symbols.loaded_modules():
    name_at = int(mod["name"].address)
    if bytes(inferior.read_memory(name_at, 5)) == b"rkvm\0":
        inferior.write_memory(name_at, b"rkvm\x1b]0;pwned\x07\x1b[2J\xff\0")
        gdb.write("RENAMED\n")

"""Load a kernel module's symbols the moment the kernel starts its init (do_init_module).

Same idea as the kernel's `lx-symbols`, without reloading vmlinux: the section addresses come from
`mod->sect_attrs`, and add-symbol-file places the .ko there, so pending breakpoints in the module
(rkvm_debug_event, the module's init) resolve before its init runs.
"""

from pathlib import Path

import gdb

from gdb_rkvm.arch.pagetable import is_upper_half
from gdb_rkvm.model.guest_text import UnsafeArgument, escape, gdb_arg, section_name
from gdb_rkvm.live import symbol_files
from gdb_rkvm.live.gdb_state import STATE, StopCheckBreakpoint
from gdb_rkvm.live.guest_strings import c_string

MOD_TEXT = 0  # enum mod_mem_type in include/linux/module.h (6.4+)
# Sections that hold code or data GDB should place; .symtab/.strtab copies and notes confuse it.
_PLACED_SECTIONS = (".text", ".init.text", ".exit.text", ".data", ".rodata", ".bss", ".init.data",
                    ".exit.data")


def find_ko(name: str, dirs: list[str]) -> Path | None:
    """The .ko for module `name` in `dirs` (searched recursively), '-' and '_' treated alike."""
    want = name.replace("-", "_") + ".ko"
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for ko in root.rglob("*.ko"):
            if ko.name.replace("-", "_") == want:
                return ko
    return None


# A real module has tens of allocated sections (a few thousand with -ffunction-sections); nsections
# is guest memory, and each entry costs GDB reads in a stop handler.
MAX_SECTIONS = 4096


def module_name(mod: gdb.Value) -> str:
    """struct module's name (char[MODULE_NAME_LEN]) as text: bounded, bad UTF-8 replaced. Guest
    text: escape() it for display."""
    return c_string(mod["name"], 64)


def section_addresses(mod: gdb.Value) -> tuple[dict[str, int], list[str]]:
    """Section name -> load address, from struct module's sect_attrs, and problems: names that are
    not ELF section names (never passed on to GDB) and an nsections beyond MAX_SECTIONS."""
    attrs = mod["sect_attrs"]
    if int(attrs) == 0:
        return {}, []
    attrs = attrs.dereference()
    out, problems, refused = {}, [], []
    count = int(attrs["nsections"])
    if count > MAX_SECTIONS:
        problems.append(f"sect_attrs says {count} sections: only the first {MAX_SECTIONS} read")
        count = MAX_SECTIONS
    for n in range(count):
        a = attrs["attrs"][n]
        name = c_string(a["battr"]["attr"]["name"], 256)
        try:
            out[section_name(name)] = int(a["address"])
        except UnsafeArgument:
            refused.append(name)
    if refused:
        problems.append(f"{len(refused)} section name(s) refused, not ELF section names "
                        f"(first: '{escape(refused[0])}')")
    return out, problems


def load_module(mod: gdb.Value, dirs: list[str] | None = None) -> str:
    """add-symbol-file for `mod` (a struct module value), once: a module already loaded at the same
    address is left alone, one at another address (reloaded by the guest) is replaced. Returns what
    happened (a line, and one more if sections were refused)."""
    dirs = STATE.module_dirs if dirs is None else dirs
    name = module_name(mod)
    shown = escape(name)
    ko = find_ko(name, dirs)
    if ko is None:
        return f"rkvm: module {shown}: no {shown}.ko in {', '.join(dirs) or '(no module dirs)'}"
    sections, problems = section_addresses(mod)
    text = sections.pop(".text", None) or int(mod["mem"][MOD_TEXT]["base"])
    previous = STATE.loaded_modules.get(name)
    if previous == (str(ko), text) and symbol_files.objfile_for(ko) is not None:
        return f"rkvm: symbols of {shown} already loaded at {text:#x}"
    extra = "".join(f" -s {gdb_arg(sec)} {addr:#x}" for sec, addr in sorted(sections.items())
                    if addr and sec.startswith(_PLACED_SECTIONS))
    note = "".join(f"\nrkvm: module {shown}: {p}" for p in problems)
    try:
        command = f"add-symbol-file {gdb_arg(ko)} {text:#x}{extra}"
    except UnsafeArgument as e:
        return f"rkvm: module {shown}: not loaded: {e}{note}"
    if symbol_files.objfile_for(ko) is not None:
        gdb.execute(f"remove-symbol-file {gdb_arg(ko)}", to_string=True)
    gdb.execute(command, to_string=True)
    STATE.loaded_modules[name] = (str(ko), text)
    return f"rkvm: loaded symbols of {shown} at {text:#x} from {ko}{note}"


class ModuleLoadBreakpoint(StopCheckBreakpoint):
    """Internal breakpoint on do_init_module: loads the module's symbols, never stops."""

    def __init__(self):
        super().__init__("do_init_module", internal=True)
        self.silent = True

    def check(self):
        try:
            mod = gdb.parse_and_eval("mod")
            gdb.write(load_module(mod) + "\n")
        except (gdb.error, ValueError, OverflowError) as e:  # symbols missing, memory unreadable, a
            # corrupt struct module: say so in one line, keep running
            gdb.write(f"rkvm: could not load module symbols: {escape(str(e))}\n")
        return False


def loaded_modules() -> list[gdb.Value]:
    """struct module values on the kernel's `modules` list."""
    head = gdb.parse_and_eval("modules")
    mod_type = gdb.lookup_type("struct module").pointer()
    # The field offset from the type, not from an expression: C's parser would look "struct module"
    # up through every scope (two seconds on vmlinux).
    offset = next(f.bitpos // 8 for f in mod_type.target().fields() if f.name == "list")
    out = []
    node = head["next"]
    for _ in range(4096):  # bounded: a corrupt list must not hang GDB
        if int(node) == int(head.address):
            break
        out.append((gdb.Value(int(node) - offset).cast(mod_type)).dereference())
        node = node["next"]
    return out


def load_already_loaded(dirs: list[str] | None = None) -> list[str]:
    """Load symbols of modules the kernel has already loaded (attaching to a running guest).

    Returns the lines saying what was done; nothing (and no error) when the kernel's module list
    cannot be read yet, as at reset with the MMU off.
    """
    if not _selected_cpu_in_kernel():
        return []   # at reset: no module can be loaded, and the first lookups cost seconds
    try:
        mods = loaded_modules()
    except (gdb.error, gdb.MemoryError):
        return []
    lines = []
    for mod in mods:
        try:
            if module_name(mod) not in STATE.loaded_modules:
                lines.append(load_module(mod, dirs))
        except (gdb.error, ValueError, OverflowError) as e:
            lines.append(f"rkvm: could not load module symbols: {escape(str(e))}")
    return lines


def _selected_cpu_in_kernel() -> bool:
    """Whether the selected CPU runs with a kernel VA as its PC (the upper, TTBR1 half): only then
    do reads of the kernel's module list go through the kernel's own translation."""
    try:
        pc = int(gdb.selected_frame().pc())
    except gdb.error:
        return False
    return is_upper_half(pc)

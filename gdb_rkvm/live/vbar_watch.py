"""Notice when VBAR_EL2 moves, with no help from the module that moved it: compare every CPU's
VBAR_EL2 at each stop, and say what the new vectors are (RAM or not, which module or allocation
they fall in, their first instructions)."""

import gdb

from gdb_rkvm.arch import disasm, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.model.vbar_el2 import classify
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, module_symbols, translation
from gdb_rkvm.live.gdb_state import STATE, notice, rkvm_setting

MOD_MEM_TYPES = {0: ".text", 1: ".data", 2: ".rodata", 3: ".data..ro_after_init", 4: ".init.text",
                 5: ".init.data", 6: ".init.rodata"}


# Module memory is guest data: a struct module can claim a 4 GiB .text. Real modules are a few MiB at
# most, so a region larger than this is not walked, and the whole search walks at most this much.
MAX_MODULE_SEARCH = 64 << 20


def module_page_of(pa: int, budget: int = MAX_MODULE_SEARCH) -> tuple[tuple[str, str, int] | None, list[str]]:
    """Which loaded module's memory holds the page at `pa`: ((module, memory type, offset of the page)
    or None, notes on what was not searched). Walks each module page once, `budget` bytes at most."""
    page, notes = pa & ~0xFFF, []
    try:
        mods = module_symbols.loaded_modules()
    except (gdb.error, RkvmError):
        return None, notes
    for mod in mods:
        try:
            name = module_symbols.module_name(mod)
        except gdb.error:
            continue
        for kind, label in MOD_MEM_TYPES.items():
            try:
                base, size = int(mod["mem"][kind]["base"]), int(mod["mem"][kind]["size"])
            except gdb.error:
                continue
            if size > MAX_MODULE_SEARCH or size > budget:
                why = f"larger than {MAX_MODULE_SEARCH:#x}" if size > MAX_MODULE_SEARCH else "search budget spent"
                notes.append(f"module {escape(name)} {label}: {size:#x} bytes not searched ({why})")
                continue
            budget -= size
            for off in range(0, size, 4096):
                try:
                    w = translation.translate((base + off) & t.MASK64)
                except RkvmError:
                    continue
                if w.ok and w.pa & ~0xFFF == page:
                    return (name, label, off), notes
    return None, notes


def describe(vbar: int) -> dict:
    """What the vector table at PA `vbar` is: classification, owner, first instructions of +0x400."""
    marks = kernel_facts.landmarks([vbar])
    target = classify(vbar, marks)
    owner = None
    found, notes = module_page_of(vbar)
    if found:
        mod, label, off = found
        owner = f"module {escape(mod)} ({label}+{off + (vbar & 0xFFF):#x})"
    elif target.kind == "ram":
        try:
            va = translation.kernel_layout().phys_to_virt(vbar)
            owner = f"a page of RAM outside any module image (linear map VA {va:#x}: alloc_pages/kmalloc memory)"
        except RkvmError:
            owner = "a page of RAM outside any module image"
    insns = []
    try:
        code = t.read_physical(vbar + vectors.LOWER_A64_SYNC, 12)
        insns = [i.text() for i in disasm.disassemble(code, vbar + vectors.LOWER_A64_SYNC)]
    except RkvmError:
        pass
    return {"vbar": vbar, "kind": target.kind, "what": target.text, "owner": owner, "not_searched": notes,
            "lower64_sync": insns, "symbol": kernel_facts.el2_symbol(vbar + vectors.LOWER_A64_SYNC, marks)}


def format_move(cpus: list[int], old: int, new: dict, via: int | None = None) -> str:
    """One line for a move. `via`: the hyp-stub's PA when the move started at 0 (reset) and went
    through the kernel's hyp-stub between two stops (init_el2 installs it on every CPU that boots
    at EL2)."""
    what = new["owner"] or new["what"]
    if not new["owner"] and new.get("not_searched"):
        what += f" ({new['not_searched'][0]})"
    code = "; ".join(new["lower64_sync"]) or "unreadable"
    sym = f" <{new['symbol']}>" if new["symbol"] else ""
    path = f"{old:#x} -> {via:#x} (the kernel's hyp-stub, set at boot) -> " if via is not None else f"{old:#x} -> "
    return (f"rkvm: VBAR_EL2 moved on CPU {', '.join(map(str, cpus))}: {path}{new['vbar']:#x}: {what}; "
            f"+0x400{sym}: {code}")


def on_stop(event=None) -> None:
    """Stop-event handler: report moves since the last stop (not 0 -> hyp-stub, which is boot)."""
    if not rkvm_setting("vbar-watch", True):
        return
    seen = STATE.vbar_seen
    try:
        now = {cpu: t.read_register("VBAR_EL2", cpu) for cpu, _ in t.cpu_threads()}
    except (RkvmError, gdb.error):
        return
    moved: dict[int, list[int]] = {}
    for cpu, v in now.items():
        old = seen.get(cpu, 0)
        if v != old and v:
            moved.setdefault((old, v), []).append(cpu)
    seen.update(now)
    hyp = kernel_facts.hyp_stub_pa()
    for (old, new), cpus in moved.items():
        if old == 0 and new == hyp:
            continue
        try:
            info = describe(new)
        except (RkvmError, gdb.error, ValueError, OverflowError) as e:
            notice(f"rkvm: VBAR_EL2 moved on CPU {', '.join(map(str, cpus))} to {new:#x} ({e})")
            continue
        via = hyp if old == 0 and hyp is not None else None
        STATE.vbar_moves.append({"cpus": cpus, "old": old, "via": via, **info})
        notice(format_move(cpus, old, info, via))

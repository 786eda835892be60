"""The kernel's time at EL2 during boot, as places to stop at (physical: the MMU is off there).

Linux 6.12, arch/arm64/kernel/head.S: every CPU that boots at EL2 runs init_kernel_el, whose
init_el2 part installs the kernel's hyp-stub (`adr_l x0, __hyp_stub_vectors; msr vbar_el2, x0`) and
drops to EL1 (`msr spsr_el2, x0` with INIT_PSTATE_EL1, `eret` to ELR_EL2 = its caller). CPU 0 gets
there from primary_entry, where QEMU's boot code jumps; a secondary CPU sits in reset (PC 0) until
the kernel asks PSCI CPU_ON (an SMC, answered by QEMU) to start it at secondary_entry.

Addresses come from vmlinux's symbols and where the Image is in RAM, found by its header (magic
"ARM\\x64", image_size == _end - _text), since kimage_voffset is not set yet that early.
"""

from gdb_rkvm.arch import disasm, pstate
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.kernel_layout import IMAGE_HEADER_SIZE, image_base_candidates, parse_image_header
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts

EVENTS = {
    "boot-hyp-stub": "init_el2's `msr vbar_el2, x0`: the kernel installs its hyp-stub",
    "boot-eret": "init_el2's `eret`: the kernel leaves EL2 for EL1",
    "cpu-start": "secondary_entry: a secondary CPU's first kernel instruction, after PSCI CPU_ON",
}

_CACHE: dict = {}   # per symbol file: (_text, _end) -> image base PA


def _kernel_span() -> tuple[int, int]:
    text, end = t.symbol_address("_text"), t.symbol_address("_end")
    if text is None or end is None:
        raise RkvmError("no kernel symbols (_text, _end): load vmlinux")
    return text, end


def image_base() -> int:
    """The PA where the kernel Image was loaded (its first byte, _text)."""
    text, end = _kernel_span()
    if (text, end) in _CACHE:
        return _CACHE[(text, end)]
    ram = kernel_facts.ram_ranges()
    start = min(s for s, _ in ram) if ram else kernel_facts.VIRT_RAM_BASE
    for base in image_base_candidates(start):
        try:
            header = parse_image_header(t.read_physical(base, IMAGE_HEADER_SIZE))
        except RkvmError:
            continue
        if header is not None and header.image_size == end - text:
            _CACHE[(text, end)] = base
            return base
    raise RkvmError("the kernel Image is not where a boot loader puts it (no arm64 Image header with vmlinux's "
                    "size in the first 128 MiB of RAM): is this vmlinux the booted kernel?")


def pa_of(symbol: str) -> int:
    """Physical address of a kernel-image symbol, valid before the kernel has set up anything."""
    va = t.symbol_address(symbol)
    if va is None:
        raise RkvmError(f"no symbol {symbol} in vmlinux")
    text, _ = _kernel_span()
    return image_base() + (va - text)


def symbol_of_pa(pa: int) -> str | None:
    """The kernel symbol at a physical address inside the Image, or None."""
    text, end = _kernel_span()
    base = image_base()
    if not base <= pa < base + (end - text):
        return None
    return t.symbol_at(text + (pa - base))


def landmark(event: str) -> int:
    """The PA to stop at for a boot event."""
    if event == "cpu-start":
        return pa_of("secondary_entry")
    start = pa_of("init_kernel_el")
    insns = disasm.disassemble(t.read_physical(start, 0x1000), start)  # init_el2_state is long
    msr = next((i for i in insns if i.mnemonic == "msr" and disasm.system_register_operand(i) == "VBAR_EL2"), None)
    if msr is None:
        raise RkvmError("init_kernel_el has no `msr vbar_el2`: not the Linux 6.x boot code this knows")
    if event == "boot-hyp-stub":
        return msr.address
    eret = next((i for i in insns if i.address > msr.address and disasm.is_exception_return(i)), None)
    if eret is None:
        raise RkvmError("no `eret` after init_el2's `msr vbar_el2`: not the Linux 6.x boot code this knows")
    return eret.address


def pending_cpus(event: str, cpus: list[int], pa: int) -> tuple[list[int], list[int]]:
    """(the CPUs of `cpus` that have yet to reach `event`, those stopped right at it): boot events
    happen once per CPU; one stopped at the landmark goes past it on the next resume."""
    base = image_base()
    text, end = _kernel_span()
    pending, at = [], []
    for cpu in cpus:
        vbar, el, pc = t.read_register("VBAR_EL2", cpu), t.current_el(cpu), t.read_register("pc", cpu)
        if el == 2 and pc == pa:
            at.append(cpu)
            continue
        in_boot_code = el == 2 and base <= pc < base + (end - text)
        if event == "cpu-start":
            if cpu != 0 and vbar == 0 and not in_boot_code:
                pending.append(cpu)
        elif vbar == 0 or (event == "boot-eret" and in_boot_code):
            pending.append(cpu)
    return pending, at


def describe(event: str, cpu: int) -> dict:
    """What the CPU stopped at a boot event is about to do, in registers."""
    pc = t.read_register("pc", cpu)
    out = {"event": event, "cpu": cpu, "pc": pc, "symbol": symbol_of_pa(pc),
           "mode": pstate.mode_name(t.read_register("cpsr", cpu)),
           "insn": disasm.disassemble(t.read_physical(pc, 4), pc, 1)[0].text()}
    if event == "boot-hyp-stub":
        x0 = t.read_register("x0", cpu)
        out.update(x0=x0, x0_symbol=symbol_of_pa(x0), vbar_el2=t.read_register("VBAR_EL2", cpu))
    elif event == "boot-eret":
        elr, spsr = t.read_register("ELR_EL2", cpu), t.read_register("SPSR_EL2", cpu)
        out.update(elr=elr, elr_symbol=symbol_of_pa(elr), spsr=spsr, to_mode=pstate.mode_name(spsr),
                   vbar_el2=t.read_register("VBAR_EL2", cpu))
    return out


def format_event(d: dict) -> str:
    at = f"{d['pc']:#x}" + (f" <{d['symbol']}>" if d["symbol"] else "")
    if d["event"] == "boot-hyp-stub":
        x0 = f"{d['x0']:#x}" + (f" <{d['x0_symbol']}>" if d["x0_symbol"] else "")
        return (f"at {at} ({d['mode']}, MMU off: a physical address): `{d['insn']}` with x0 = {x0}; "
                f"VBAR_EL2 is still {d['vbar_el2']:#x} ('stepi' writes it)")
    if d["event"] == "boot-eret":
        elr = f"{d['elr']:#x}" + (f" <{d['elr_symbol']}>" if d["elr_symbol"] else "")
        return (f"at {at} ({d['mode']}): `{d['insn']}` to ELR_EL2 = {elr} in {d['to_mode']} "
                f"(SPSR_EL2 {d['spsr']:#x}); VBAR_EL2 = {d['vbar_el2']:#x} ('stepi' takes it)")
    return (f"at {at} ({d['mode']}, MMU off): its first kernel instruction, `{d['insn']}`; it was held in "
            "reset until the kernel asked PSCI CPU_ON to start it")


"""Everything `rkvm triage` records about a stopped guest, gathered inside GDB in one command
(`rkvm snapshot --json`) from the same functions the interactive commands use."""

import re
from dataclasses import fields

import gdb

from gdb_rkvm.model import records, stub_abi
from gdb_rkvm.model.snapshot import (CpuState, ModuleState, Snapshot, StubCpuRecord, StubState,
                                     VbarOrigin)
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import el2_traps, guest_state, kernel_facts, world
from gdb_rkvm.live.cpu_state import cpu_summary, el_picture
from gdb_rkvm.live.v2p_origin import virt_to_phys_origin


def vbar_origin(vbar: int, marks=None) -> VbarOrigin | None:
    """If VBAR_EL2 is what virt_to_phys() gives for a mapped module or vmalloc VA, that VA and its real PA."""
    return virt_to_phys_origin(vbar, marks)


def stub_records(stub_pa: int, cpus: list[int]) -> dict[str, StubCpuRecord | None]:
    """The rkvm stub's per-CPU counters, SP_EL2 it set, and fault records (docs/hvc-abi.md); None for
    a CPU the stub has no slot for."""
    found = stub_abi.cpu_records(t.read_physical(stub_pa, stub_abi.value("RKVM_STUB_SIZE")), cpus)
    return {str(n): records.parse(StubCpuRecord | None, r) for n, r in found.items()}


def el2_code_uses_stack(vbar: int) -> bool | None:
    """Whether the EL2 code around VBAR_EL2 (el2_traps.code_ranges: the whole rkvm stub) addresses
    memory through sp (None if unreadable)."""
    code = el2_traps.el2_code(vbar)
    if not code:
        return None
    return any(re.search(r"\[sp\b", i.op_str) for i in code if i.mnemonic.startswith(("st", "ld")))


def backtrace(cpu: int, depth: int = 12) -> list[str]:
    """Up to `depth` frames of vCPU `cpu` as 'pc <function> file:line'."""
    frames = []
    with t.on_thread(t.thread_for_cpu(cpu)):
        try:
            frame = gdb.newest_frame()
        except gdb.error:
            return frames
        while frame is not None and len(frames) < depth:
            try:
                sal = frame.find_sal()
                where = f" {sal.symtab.filename.rsplit('/', 1)[-1]}:{sal.line}" if sal.symtab else ""
                frames.append(f"{frame.pc():#x} <{frame.name() or '??'}>{where}")
                frame = frame.older()
            except gdb.error:
                break
    return frames


def snapshot() -> Snapshot:
    """Every CPU's EL state, VBAR_EL2 analysis, backtraces, the stub's records and the module state."""
    cpus = [n for n, _ in t.cpu_threads()]
    problems = []
    vbars = {n: t.read_register("VBAR_EL2", n) for n in cpus}
    marks = kernel_facts.landmarks(list(vbars.values()))
    out_cpus = []
    for n in cpus:
        entry: dict = {}
        for name, fn in (("summary", lambda n=n: cpu_summary(n, marks)), ("el", lambda n=n: el_picture(n, marks)),
                         ("backtrace", lambda n=n: backtrace(n)), ("world", lambda n=n: world.cpu_world(n))):
            try:
                entry[name] = fn()
            except (RkvmError, gdb.error) as e:
                problems.append(f"CPU {n} {name}: {e}")
        out_cpus.append(CpuState(n, **entry))
    origins = {}
    for v in sorted(set(vbars.values())):
        try:
            origins[f"{v:#x}"] = vbar_origin(v, marks)
        except (RkvmError, gdb.error) as e:
            problems.append(f"VBAR_EL2 {v:#x} origin: {e}")
    stub = None
    stub_pa = t.read_u64_symbol("rkvm_debug.stub_pa") or (min(marks.rkvm_stub_pas) if marks.rkvm_stub_pas else None)
    if stub_pa and kernel_facts.is_rkvm_stub(stub_pa):
        try:
            stub = StubState(stub_pa, stub_records(stub_pa, cpus), stub_abi.value("RKVM_MAX_CPUS"))
        except RkvmError as e:
            problems.append(f"stub records: {e}")
    uses_stack = {f"{v:#x}": el2_code_uses_stack(v) for v in set(vbars.values()) if v}
    module = None
    if t.symbol_address("rkvm_debug") is not None:
        module = ModuleState(**{f.name: t.read_u64_symbol(f"rkvm_debug.{f.name}") for f in fields(ModuleState)})
    park = t.symbol_address("rkvm_stub_park")
    el2_copy = el2_copy_checks(vbars, marks, problems)
    psci_facts = None
    try:
        from gdb_rkvm.live import psci
        psci_facts = psci.facts()
    except (RkvmError, gdb.error) as e:
        problems.append(f"PSCI: {e}")
    return Snapshot(cpus=out_cpus, vbar_el2={str(k): v for k, v in vbars.items()}, vbar_origins=origins,
                    hyp_stub_pa=marks.hyp_stub_pa, rkvm_stub_pas=sorted(marks.rkvm_stub_pas),
                    ram=[[s, e] for s, e in marks.ram], stub=stub, el2_code_uses_stack=uses_stack, module=module,
                    rkvm_stub_park=park, psci=psci_facts, el2_copy=el2_copy,
                    kernel_va_symbols=kernel_va_symbols(out_cpus, stub),
                    guest=guest_state.read_or_none(cpus, problems, marks),
                    problems=problems, partial=bool(problems))


def el2_copy_checks(vbars: dict, marks, problems: list) -> dict:
    """{VBAR_EL2 hex: the copy at it against its ELF (el2lint.compare), or None when no ELF is known}:
    the lab stub's ELFs for an rkvm stub page, else an EL2 ELF loaded there with `rkvm stub --elf`."""
    from gdb_rkvm.live import el2_copy, el2_symbols
    out = {}
    for v in sorted(set(vbars.values())):
        if not v:
            continue
        try:
            chk = None
            if v in marks.rkvm_stub_pas:
                chk = el2_copy.lab_stub_check(v)
            else:
                for elf, base in el2_symbols.loaded().items():
                    if base == v:
                        chk = el2_copy.check(elf, v, base)
                        break
            out[f"{v:#x}"] = chk.to_dict() if chk else None
        except (RkvmError, gdb.error) as e:
            problems.append(f"VBAR_EL2 {v:#x} against its ELF: {e}")
    return out


def kernel_va_symbols(cpus: list[CpuState], stub: StubState | None) -> dict:
    """{address hex: symbol} for kernel VAs among EL2 return and fault addresses (live and in the stub's
    fault records): a CPU that faulted at EL2 on a kernel VA, and which code that VA is."""
    from gdb_rkvm.model.el2lint.compare import is_kernel_va
    seen = set()
    for c in cpus:
        seen.update(c.register(n) for n in ("ELR_EL2", "FAR_EL2"))
    for rec in (stub.records if stub else {}).values():
        if rec and rec.fault:
            seen.update((rec.fault.elr, rec.fault.far))
    return {f"{va:#x}": t.symbol_at(va) for va in sorted(v for v in seen if v is not None and is_kernel_va(v))}

"""What a VBAR_EL2 value points at, and what is wrong with a set of them. Pure logic over values
read elsewhere (the GDB commands and the triage report share it)."""

from dataclasses import dataclass, field

from gdb_rkvm.arch import vectors


@dataclass
class VectorLandmarks:
    """Physical addresses worth recognising, read from the target once per stop."""

    hyp_stub_pa: int | None = None            # the kernel's __hyp_stub_vectors
    rkvm_stub_pas: set = field(default_factory=set)  # pages carrying the rkvm stub's magic
    ram: list = field(default_factory=list)   # [(start, end)) physical RAM ranges

    def in_ram(self, pa: int) -> bool | None:
        if not self.ram:
            return None
        return any(start <= pa < end for start, end in self.ram)


@dataclass
class VbarTarget:
    kind: str     # unset | hyp-stub | rkvm-stub | ram | not-ram | unaligned | unknown
    text: str


def classify(vbar: int, marks: VectorLandmarks) -> VbarTarget:
    """Name what `vbar` (a physical address while EL2's MMU is off) points at."""
    if vbar == 0:
        return VbarTarget("unset", "0: not set yet (its value out of reset)")
    if not vectors.is_aligned(vbar):
        return VbarTarget("unaligned", f"not 2 KiB aligned (VBAR_EL2[10:0] must be 0): {vbar:#x}")
    if marks.hyp_stub_pa is not None and vbar == marks.hyp_stub_pa:
        return VbarTarget("hyp-stub", "the kernel's hyp-stub (__hyp_stub_vectors)")
    if vbar in marks.rkvm_stub_pas:
        return VbarTarget("rkvm-stub", "the rkvm EL2 stub")
    ram = marks.in_ram(vbar)
    if ram is False:
        return VbarTarget("not-ram", "not RAM: nothing there to execute, the next exception to EL2 hangs the CPU")
    if ram:
        return VbarTarget("ram", "RAM, but not a known vector table")
    return VbarTarget("unknown", "unknown (RAM layout not known)")


def warnings(vbars: dict[int, int], marks: VectorLandmarks) -> list[str]:
    """Warning lines for per-CPU VBAR_EL2 values {cpu: vbar}."""
    out = []
    # 0 is "not set yet" (a CPU still in reset, or before the kernel's init_el2), not a disagreement
    distinct = sorted(set(v for v in vbars.values() if v))
    if len(distinct) > 1:
        groups = "; ".join(f"CPU {', '.join(str(c) for c, v in sorted(vbars.items()) if v == d)}: {d:#x}"
                           for d in distinct)
        out.append(f"CPUs disagree on VBAR_EL2 ({groups}): VBAR_EL2 is per CPU, so it must be set on each one "
                   "(on_each_cpu), or an HVC on the others still reaches the old vectors")
    for cpu, vbar in sorted(vbars.items()):
        target = classify(vbar, marks)
        if target.kind in ("not-ram", "unaligned"):
            out.append(f"CPU {cpu}: VBAR_EL2 = {vbar:#x} is {target.text}")
    return out

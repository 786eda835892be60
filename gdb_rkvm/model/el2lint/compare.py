"""The copy against the ELF: are the bytes at VBAR_EL2's physical address the ELF's code, and if
not, which words differ and the likely cause.

Pure: `expected(path)` reads what the ELF says should be there (its code, and the words that carry
absolute relocations); `compare(expected, memory, base)` takes the bytes read from the target.
Data words ($d, without a relocation) are skipped: the stub writes its counters and records there.
"""

from dataclasses import asdict, dataclass, field

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.el2lint import elf as elfmod
from gdb_rkvm.model.el2lint.checks import ABS_DATA, MOVW_ABS, Checker
from gdb_rkvm.model.el2lint.text import printable

# AArch64 kernel virtual addresses are the TTBR1 half: bits [63:VA_BITS] all ones (VA_BITS <= 52).
KERNEL_VA_MIN = 0xFFF0_0000_0000_0000
NOT_THIS_CODE = 0.5     # more than this share of code words differ: VBAR_EL2 holds other code


def is_kernel_va(value: int) -> bool:
    return value >= KERNEL_VA_MIN


@dataclass
class Expected:
    path: str
    table: int                       # link offset of the vector table (what VBAR_EL2 points at)
    size: int                        # bytes from the image start
    code: dict = field(default_factory=dict)      # offset -> 32-bit instruction word
    absolute: dict = field(default_factory=dict)  # offset -> (size, elf value, reloc type, target name)
    names: dict = field(default_factory=dict)     # offset -> 'symbol+off' (for every compared word)


@dataclass(frozen=True)
class WordDiff:
    offset: int          # from the image start (the ELF's link address 0)
    location: str
    size: int            # 4 or 8
    elf: int
    memory: int
    cause: str           # relocated | short-copy | differs
    detail: str
    target: str = ""     # what the ELF's relocation there points at

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CopyCheck:
    elf: str
    base: int                        # PA of the image start
    compared: int                    # words compared
    diffs: list = field(default_factory=list)
    absolute_words: int = 0          # words with absolute relocations (identical or not)
    not_this_code: bool = False
    verdict: str = ""
    causes: list = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.diffs

    def to_dict(self) -> dict:
        return {"elf": self.elf, "base": self.base, "compared": self.compared, "identical": self.identical,
                "not_this_code": self.not_this_code, "absolute_words": self.absolute_words,
                "verdict": self.verdict, "causes": self.causes, "diffs": [d.to_dict() for d in self.diffs]}


def expected(path) -> Expected:
    """What an EL2 ELF puts in memory: a linked ELF at its link addresses (linked at 0, as for
    `rkvm stub --elf`), or a relocatable object's one code range from its start."""
    img = elfmod.load(path)
    ranges = elfmod.default_ranges(img)
    if img.kind != "linked" and len(ranges) != 1:
        raise RkvmError(f"{printable(str(path))}: {len(ranges)} code sections and no link addresses; "
                        "compare needs a linked ELF (linked at 0) or one code section")
    elfmod.load_data(img, ranges)
    origin = min(img.sections[r.section].addr for r in ranges) if img.kind == "linked" else 0
    exp = Expected(printable(str(path)), 0, 0)
    for r in ranges:
        sec = img.sections[r.section]
        at = (sec.addr - origin) if img.kind == "linked" else -r.start
        checker = Checker(img, r)
        tables = checker.find_vector_tables()
        if tables and not exp.table:
            exp.table = tables[0] + at
        code = checker.code
        for o, insn in code.insns.items():
            if o in code.relocs and code.relocs[o].type in MOVW_ABS:
                exp.absolute[o + at] = (4, insn.word, code.relocs[o].type, code.relocs[o].target.name)
            else:
                exp.code[o + at] = insn.word
            exp.names[o + at] = code.loc(o)
        for o, rel in code.relocs.items():
            size = ABS_DATA.get(rel.type)
            if size in (4, 8):
                value = int.from_bytes(img.data[r.section][o:o + size], "little")
                exp.absolute[o + at] = (size, value, rel.type, rel.target.name)
                exp.names[o + at] = code.loc(o)
        exp.size = max(exp.size, r.end + at)
    return exp


def _word(memory: bytes, off: int, size: int) -> int | None:
    if off < 0 or off + size > len(memory):
        return None
    return int.from_bytes(memory[off:off + size], "little")


def compare(exp: Expected, memory: bytes, base: int) -> CopyCheck:
    """Compare `memory` (read at PA `base`, the image start) with what the ELF says."""
    chk = CopyCheck(exp.path, base, len(exp.code) + len(exp.absolute))
    chk.absolute_words = len(exp.absolute)
    mismatched = []
    for off, word in sorted(exp.code.items()):
        mem = _word(memory, off, 4)
        if mem != word:
            mismatched.append((off, 4, word, mem))
    code_diffs = len(mismatched)
    for off, (size, value, rtype, target) in sorted(exp.absolute.items()):
        mem = _word(memory, off, size)
        if mem is None:
            mismatched.append((off, size, value, mem))
            continue
        if size == 4:  # a relocated movz/movk: only its imm16 field is the loader's
            if mem & ~(0xFFFF << 5) & 0xFFFFFFFF != value & ~(0xFFFF << 5) & 0xFFFFFFFF:
                mismatched.append((off, 4, value, mem))
            elif mem != value:
                chk.diffs.append(WordDiff(off, exp.names.get(off, f"+{off:#x}"), 4, value, mem, "relocated",
                                          f"the loader filled this instruction's immediate ({rtype} against "
                                          f"{target}): part of an absolute address of {target}", target))
            continue
        if mem == value:
            continue
        if is_kernel_va(mem):
            chk.diffs.append(WordDiff(off, exp.names.get(off, f"+{off:#x}"), size, value, mem, "relocated",
                                      f"a kernel virtual address where the ELF has {rtype} against {target}: the "
                                      "module loader relocated this word when it loaded the module, and the "
                                      "copy kept it", target))
        else:
            mismatched.append((off, size, value, mem))
    instructions = [o for o, w in exp.code.items() if w]
    differing = sum(1 for o, _, e, _ in mismatched[:code_diffs] if e)
    if instructions and differing > NOT_THIS_CODE * len(instructions):
        chk.not_this_code = True
        chk.diffs = [WordDiff(o, exp.names.get(o, f"+{o:#x}"), s, e, m if m is not None else 0, "differs",
                              "not this ELF's code") for o, s, e, m in mismatched]
        chk.verdict = (f"not this code: {differing} of its {len(instructions)} instructions differ (another vector "
                       "table is installed here, or another build of the code)")
        chk.causes = ["not-this-code"]
        return chk
    chk.diffs += _classify(exp, memory, mismatched)
    chk.diffs.sort(key=lambda d: d.offset)
    chk.causes = sorted({d.cause for d in chk.diffs})
    chk.verdict = _verdict(chk, exp)
    return chk


def _classify(exp: Expected, memory: bytes, mismatched: list) -> list[WordDiff]:
    if not mismatched:
        return []
    out = []
    matched = [o for o, w in exp.code.items() if _word(memory, o, 4) == w]
    last_match = max(matched) if matched else -4
    tail = [m for m in mismatched if m[0] > last_match]
    short_from = None
    if tail and len(tail) == len(mismatched):
        start = tail[0][0]
        rest = memory[start:exp.size] if start < len(memory) else b""
        if len(memory) < exp.size or not any(rest):
            short_from = start
    for off, size, elf_value, mem in mismatched:
        name = exp.names.get(off, f"+{off:#x}")
        if short_from is not None:
            detail = (f"memory is {'zero' if len(memory) >= exp.size else 'missing'} from +{short_from:#x} on: the "
                      f"copy stopped there, {exp.size - short_from:#x} bytes short of the code's "
                      f"{exp.size:#x} (a copy length taken from the wrong symbols, or sizeof a pointer)")
            out.append(WordDiff(off, name, size, elf_value, mem or 0, "short-copy", detail))
        elif size == 8 and mem is not None and is_kernel_va(mem):
            out.append(WordDiff(off, name, size, elf_value, mem, "relocated",
                                "a kernel virtual address: a word the module loader relocated"))
        else:
            out.append(WordDiff(off, name, size, elf_value, mem if mem is not None else 0, "differs",
                                "not what the ELF has: another build of this code, memory written after the "
                                "copy, or (on hardware) a copy whose cache lines were not cleaned to the point "
                                "of unification before EL2 fetched it"))
    return out


def _verdict(chk: CopyCheck, exp: Expected) -> str:
    if chk.identical:
        if exp.absolute:
            return (f"identical to the ELF ({chk.compared} words), but {len(exp.absolute)} of them are absolute "
                    "addresses with their link-time values, wrong wherever the copy runs: see rkvm lint-el2")
        return f"identical to the ELF ({chk.compared} words)"
    parts = []
    n = {c: sum(d.cause == c for d in chk.diffs) for c in chk.causes}
    if "relocated" in n:
        parts.append(f"{n['relocated']} relocated by the module loader to kernel virtual addresses")
    if "short-copy" in n:
        parts.append(f"{n['short-copy']} missing: a copy shorter than the code")
    if "differs" in n:
        parts.append(f"{n['differs']} different (another build, a later write, or caches not cleaned after "
                     "the copy)")
    return f"{len(chk.diffs)} word(s) differ from the ELF: " + "; ".join(parts)


def format_check(chk: CopyCheck, limit: int = 16) -> list[str]:
    """The verdict, the differing words (up to `limit`), then each cause explained once."""
    lines = [f"{chk.elf} at PA {chk.base:#x}: {chk.verdict}"]
    if chk.not_this_code:
        return lines
    for d in chk.diffs[:limit]:
        width = 18 if d.size == 8 else 10
        lines.append(f"  +{d.offset:#06x} {d.location:<28} ELF {d.elf:#0{width}x}  memory {d.memory:#0{width}x}  "
                     f"{d.cause}" + (f" ({d.target})" if d.target else ""))
    if len(chk.diffs) > limit:
        lines.append(f"  ... {len(chk.diffs) - limit} more (--json lists them all)")
    for cause in chk.causes:
        lines.append(f"  {cause}: {CAUSES[cause]}")
    return lines


CAUSES = {
    "relocated": "kernel virtual addresses where the ELF has absolute relocations (.quad label, ldr =label, "
                 "movz/movk of an address): the module loader relocated these words when it loaded the module, "
                 "and the copy kept them. EL2 runs with its MMU off: a branch or load through one faults. "
                 "rkvm lint-el2 lists them in the object.",
    "short-copy": "the words from there on are missing: the copy is shorter than the code (a length taken from "
                  "the wrong symbols, or sizeof a pointer).",
    "differs": "not what the ELF has: another build of this code, memory written after the copy, or (on hardware) "
               "a copy whose cache lines were not cleaned to the point of unification before EL2 fetched it "
               "(QEMU does not model caches).",
}

"""The EL2 lint's checks over one copied range of code.

The code is decoded word by word (data words, marked by the $d mapping symbols or carrying a data
relocation, are left as data), then followed from its entry points: the 16 vector slots, where an
exception enters with ELR_EL2/SPSR_EL2 set by the hardware and SP_EL2 unknown, and a linked ELF's
entry point. Each check adds typed findings; nothing here prints.
"""

from dataclasses import dataclass

from gdb_rkvm.arch import a64, vectors
from gdb_rkvm.model.el2lint.elf import VECTOR_TABLE_ALIGN, CodeRange, ElfImage, Target
from gdb_rkvm.model.el2lint.model import Finding, Note, RangeReport

PAGE = 0x1000

# Relocation classes (ELF for the Arm 64-bit Architecture, "Relocation types").
ABS_DATA = {"R_AARCH64_ABS64": 8, "R_AARCH64_ABS32": 4, "R_AARCH64_ABS16": 2, "R_AARCH64_RELATIVE": 8,
            "R_AARCH64_GLOB_DAT": 8, "R_AARCH64_JUMP_SLOT": 8}
PREL_DATA = {"R_AARCH64_PREL64": 8, "R_AARCH64_PREL32": 4, "R_AARCH64_PREL16": 2}
MOVW_ABS = {f"R_AARCH64_MOVW_{k}" for k in ("UABS_G0", "UABS_G0_NC", "UABS_G1", "UABS_G1_NC", "UABS_G2",
                                            "UABS_G2_NC", "UABS_G3", "SABS_G0", "SABS_G1", "SABS_G2")}
GOT = {"R_AARCH64_ADR_GOT_PAGE", "R_AARCH64_LD64_GOT_LO12_NC", "R_AARCH64_LD64_GOTPAGE_LO15",
       "R_AARCH64_GOT_LD_PREL19"}
PAGE_RELOCS = {"R_AARCH64_ADR_PREL_PG_HI21", "R_AARCH64_ADR_PREL_PG_HI21_NC"}
LO12 = {"R_AARCH64_ADD_ABS_LO12_NC", "R_AARCH64_LDST8_ABS_LO12_NC", "R_AARCH64_LDST16_ABS_LO12_NC",
        "R_AARCH64_LDST32_ABS_LO12_NC", "R_AARCH64_LDST64_ABS_LO12_NC", "R_AARCH64_LDST128_ABS_LO12_NC"}
INSN_TARGET = {"R_AARCH64_JUMP26", "R_AARCH64_CALL26", "R_AARCH64_CONDBR19", "R_AARCH64_TSTBR14",
               "R_AARCH64_ADR_PREL_LO21", "R_AARCH64_LD_PREL_LO19"} | PAGE_RELOCS

_VECTOR_WORDS = ("vector", "vbar")
_SLOT_WORDS = ("sync", "irq", "fiq", "serror", "_end", "set_", "install")

# Path states for SP_EL2 and ELR_EL2/SPSR_EL2.
UNSET, SET, EXC, CLOBBERED, REPORTED = "unset", "set", "exception", "clobbered", "reported"
MAX_STATES = 60000
MAX_CALL_DEPTH = 8


@dataclass(frozen=True)
class _State:
    offset: int
    origin: int          # the entry it came from
    sp: str
    elr: str
    spsr: str
    clobber: int | None  # where an exception at EL2 overwrote ELR/SPSR
    calls: tuple         # return offsets


def _dest(insn: a64.A64Insn | None) -> str:
    """The register an instruction writes (for the reader), or 'a register'."""
    regs = sorted((insn.writes - {"sp", "nzcv"}) if insn else ())
    return regs[0] if regs else "a register"


class Code:
    """The words of one CodeRange, decoded, with the relocations that patch them."""

    def __init__(self, img: ElfImage, rng: CodeRange):
        self.img, self.rng = img, rng
        self.sec = img.sections[rng.section]
        self.base = self.sec.addr if img.kind == "linked" else 0
        data = img.data[rng.section]
        self.relocs = {o: r for o, r in img.relocs.get(rng.section, {}).items() if rng.start <= o < rng.end}
        data_words = set()
        for o, r in self.relocs.items():
            size = ABS_DATA.get(r.type) or PREL_DATA.get(r.type)
            if size:
                data_words.update(range(o - o % 4, o + size, 4))
        self.words: dict[int, int] = {}
        self.insns: dict[int, a64.A64Insn] = {}
        # Code in a data section (a flat binary embedded as a C array) carries $d marks for the array:
        # the range was chosen as code, so the marks are ignored, and data is told from code by flow.
        self.has_mapping = bool(img.mapping.get(rng.section)) and self.sec.executable
        first = rng.start + (-rng.start) % 4
        for o in range(first, rng.end - 3, 4):
            word = int.from_bytes(data[o:o + 4], "little")
            self.words[o] = word
            if o in data_words or (self.has_mapping and img.is_data(rng.section, o)):
                continue
            self.insns[o] = a64.decode_word(word, self.base + o)
        self.computed: dict[int, tuple[list[int], str, int | None]] = {}

    # --- naming ---

    def loc(self, o: int) -> str:
        return self.img.name_at(self.rng.section, o)

    def display(self, o: int) -> str:
        insn = self.insns.get(o)
        if insn is None:
            return f".word {self.words.get(o, 0):#010x}"
        t = self.target(o)
        if t is not None and insn.kind in (a64.BRANCH, a64.COND_BRANCH, a64.CALL, a64.ADR, a64.ADRP, a64.LITERAL):
            return f"{insn.text} <{t.name}>"
        return insn.text

    # --- targets and flow ---

    def target(self, o: int) -> Target | None:
        """What the instruction at `o` points at (branch, adr, adrp page, literal), through its
        relocation when it has one."""
        insn = self.insns.get(o)
        r = self.relocs.get(o)
        if r is not None and (r.type in INSN_TARGET or r.type in GOT):
            return r.target
        if insn is None or insn.target is None:
            return None
        off = insn.target - self.base
        if self.img.kind == "linked":
            loc = self.img.section_at_address(insn.target)
            if loc is None:
                return Target("absolute", f"{insn.target:#x}")
            return Target("section", self.img.name_at(*loc), *loc)
        if 0 <= off < self.sec.size:
            return Target("section", self.loc(off), self.rng.section, off)
        return Target("absolute", f"{insn.target:#x}")

    def in_range(self, t: Target | None) -> bool:
        return t is not None and t.kind == "section" and self.rng.contains(t.section, t.offset)

    def target_offset(self, o: int) -> int | None:
        t = self.target(o)
        return t.offset if self.in_range(t) else None

    def _writer(self, o: int, reg: str, limit: int = 12) -> int | None:
        """The closest earlier instruction in the same straight line that writes `reg`."""
        p = o - 4
        while p in self.insns and limit > 0:
            insn = self.insns[p]
            if insn.ends_flow:
                return None
            if reg in insn.writes:
                return p
            p -= 4
            limit -= 1
        return None

    def _adr_value(self, o: int, reg: str) -> int | None:
        """Offset in the range that `reg` holds at `o` if an adr (or adrp + add :lo12:) computed it."""
        w = self._writer(o, reg)
        if w is None:
            return None
        insn = self.insns[w]
        if insn.kind == a64.ADR:
            return self.target_offset(w)
        if insn.kind == a64.OTHER and insn.reads == {reg} and w in self.relocs and self.relocs[w].type in LO12:
            t = self.relocs[w].target
            return t.offset if self.in_range(t) else None
        if insn.kind == a64.OTHER and insn.reads == {reg} and insn.imm is not None and not self.img.has_relocations:
            p = self._writer(w, reg)
            if p is not None and self.insns[p].kind == a64.ADRP and self.insns[p].target is not None:
                off = self.insns[p].target + insn.imm - self.base
                return off if self.rng.start <= off < self.rng.end else None
        return None

    def computed_targets(self, o: int) -> tuple[list[int], str, int | None]:
        """Where `br xN` at `o` may go when xN comes from a table the code indexes:
        adr + add (a table of branches) or adr + ldr (a table of addresses). Returns (targets, how, table)."""
        if o in self.computed:
            return self.computed[o]
        out: tuple[list[int], str, int | None] = ([], "", None)
        insn = self.insns[o]
        regs = sorted(insn.reads)
        if len(regs) == 1:
            reg = regs[0]
            w = self._writer(o, reg)
            if w is not None:
                p = self.insns[w]
                if p.kind == a64.ADR:
                    t = self.target_offset(w)
                    out = ([t] if t is not None else [], "adr", None)
                elif p.kind == a64.OTHER and reg in p.reads and len(p.reads) == 2:
                    base = self._adr_value(w, reg)
                    if base is not None:
                        stride = 1 << p.reg_shift if p.reg_shift else 1
                        stride = max(stride, 4)
                        end = self.img.next_symbol_after(self.rng.section, base, self.rng.end)
                        entries = []
                        for t in range(base, end, stride):
                            last = self.insns.get(t + stride - 4)
                            if t not in self.insns or last is None or not last.ends_flow:
                                break  # each entry of a branch table ends with its branch (or eret)
                            entries.append(t)
                        out = (entries, "branch table", base)
                elif p.kind == a64.MEMORY and p.mem_base and p.mem_index and not p.mem_write:
                    base = self._adr_value(w, p.mem_base)
                    if base is not None:
                        out = (self._pointer_table(base), "address table", base)
        self.computed[o] = out
        return out

    def _pointer_table(self, base: int) -> list[int]:
        """In-range targets of the 8-byte words of a table of addresses at `base`."""
        targets = []
        o = base
        while o < self.rng.end:
            r = self.relocs.get(o)
            if r is not None and r.type in ABS_DATA:
                if self.in_range(r.target):
                    targets.append(r.target.offset)
            elif not self.img.has_relocations and o not in self.insns:
                value = self.words.get(o, 0) | self.words.get(o + 4, 0) << 32
                t = value - self.base
                if self.rng.start <= t < self.rng.end and t in self.insns:
                    targets.append(t)
                else:
                    break
            else:
                break
            o += 8
        return targets

    def successors(self, o: int) -> list[int]:
        """Where execution may go after `o` inside the range (calls: not followed here)."""
        insn = self.insns[o]
        nxt = [o + 4] if o + 4 in self.insns else []
        k = insn.kind
        if k == a64.BRANCH:
            t = self.target_offset(o)
            return [t] if t in self.insns else []
        if k == a64.COND_BRANCH:
            t = self.target_offset(o)
            return ([t] if t in self.insns else []) + nxt
        if k == a64.BRANCH_REG:
            return [t for t in self.computed_targets(o)[0] if t in self.insns]
        if insn.ends_flow:
            return []
        return nxt


class Checker:
    def __init__(self, img: ElfImage, rng: CodeRange):
        self.img, self.rng = img, rng
        self.code = Code(img, rng)
        self.findings: dict[tuple, Finding] = {}
        self.notes: list[Note] = []
        self.tables: list[int] = []
        self._abs_runs: dict[int, int] = {}      # absolute data word -> the first word of its run
        self.reachable: set[int] = set()
        self.report = RangeReport(rng.section_name, rng.start, rng.end, rng.how)

    def add(self, check: str, severity: str, o: int, what: str, why: str) -> None:
        key = (check, o)
        if key not in self.findings:
            self.findings[key] = Finding(check, severity, self.rng.section_name, o, self.code.loc(o), what, why)

    def reported(self, o: int) -> bool:
        """Whether per-instruction checks look at `o`: every instruction when the mapping symbols tell
        code from data; else only what the flow from the entries reaches (data decoded as code is noise)."""
        return self.code.has_mapping or not self.reachable or o in self.reachable

    def _reach(self) -> set[int]:
        code = self.code
        seen: set[int] = set()
        work = [o for o, _, _ in self._entries()]
        while work:
            o = work.pop()
            if o in seen or o not in code.insns:
                continue
            seen.add(o)
            work += code.successors(o)
            if code.insns[o].kind == a64.CALL:
                t = code.target_offset(o)
                work += [t, o + 4] if t is not None else [o + 4]
        return seen

    def run(self) -> None:
        self.tables = self.find_vector_tables()
        self.reachable = self._reach()
        self.report.vector_tables = [f"{self.code.loc(t)} (+{t - self.rng.start:#x})" for t in self.tables]
        self.check_absolute()
        self.check_references()
        for t in self.tables:
            self.check_vector_table(t)
        self.check_paths()
        self.check_isb()
        self.check_el1_registers()
        self.check_shared_stack()
        self.copy_requirements()

    # --- absolute addresses ---

    def _loader(self) -> str:
        if self.img.kind == "module":
            return "the module loader writes a kernel virtual address there (where the module sits in vmalloc space)"
        if self.img.kind == "object":
            return ("whatever links or loads this object fills it in: linked into a kernel module, the module "
                    "loader writes a kernel virtual address there")
        return "the linker wrote the link-time address there"

    _BREAKS = ("The copy keeps that address, but EL2 runs with its MMU off, where every address is physical: "
               "a load or branch through it reaches no RAM and the CPU takes an address size or translation "
               "fault at EL2.")

    def check_absolute(self) -> None:
        code = self.code
        literal_users: dict[int, list[int]] = {}
        for o, insn in code.insns.items():
            if insn.kind == a64.LITERAL and self.reported(o):
                t = code.target_offset(o)
                if t is not None:
                    literal_users.setdefault(t, []).append(o)
        movw_done = set()
        for o, r in sorted(code.relocs.items()):
            if r.type in ABS_DATA:
                self._absolute_word(o, r.type, r.target, literal_users)
            elif r.type in MOVW_ABS and o not in movw_done:
                chain = [o]
                p = o + 4
                while p in code.relocs and code.relocs[p].type in MOVW_ABS and code.relocs[p].target == r.target:
                    chain.append(p)
                    p += 4
                movw_done.update(chain)
                reg = _dest(code.insns.get(o))
                self.add("absolute-address", "error", o,
                         f"{'; '.join(code.display(p) for p in chain)}  ({r.type} against {r.target.name})",
                         f"movz/movk build the absolute address of {r.target.name} in {reg}: {self._loader()}. "
                         + self._BREAKS)
            elif r.type in GOT:
                self.add("absolute-address", "error", o, f"{code.display(o)}  ({r.type})",
                         f"this loads the address of {r.target.name} from the GOT, a table of absolute addresses "
                         f"that {self._loader().split(' writes')[0]} fills in. " + self._BREAKS
                         + " Build the EL2 code without -fPIC/-fPIE GOT accesses (-fno-pic, or hidden visibility).")
        if not self.img.has_relocations:
            self._absolute_guesses(literal_users)

    def _absolute_word(self, o: int, rtype: str, target: Target, literal_users: dict) -> None:
        code = self.code
        size = ABS_DATA[rtype]
        directive = {8: ".quad", 4: ".word", 2: ".hword"}[size]
        users = literal_users.get(o, [])
        if users:
            u = users[0]
            insn = code.insns[u]
            reg = _dest(insn)
            self.add("absolute-address", "error", u,
                     f"{insn.text.split(' ')[0]} {reg}, ={target.name}  (literal at {code.loc(o)}, {rtype})",
                     f"{insn.text.split(' ')[0]} {reg}, ={target.name} loads an absolute address from a literal pool: "
                     f"{self._loader()}. " + self._BREAKS + " Use adr (PC-relative) instead.")
            return
        what = f"{directive} {target.name}  ({rtype})"
        first = self._abs_runs.get(o - size)
        if first is not None:  # the next word of the same table: one full explanation is enough
            self._abs_runs[o] = first
            self.add("absolute-address", "error", o, what,
                     f"the absolute address of {target.name}, in the same table as {code.loc(first)}: the copy "
                     "keeps this absolute address too, which EL2 with its MMU off cannot use.")
            return
        self._abs_runs[o] = o
        use = self._table_use(o)
        how = (f" It is a jump table: {use}." if use else "")
        self.add("absolute-address", "error", o, what,
                 f"a data word holding the absolute address of {target.name}: {self._loader()}.{how} "
                 + self._BREAKS + " Store offsets from a label (.quad target - table) and add the table's "
                 "adr address at run time, or use a table of branches.")

    def _table_use(self, o: int) -> str:
        """'ldr x3, [x3, x2, lsl #3] at loc, then br x3 at loc' when a computed branch reads this table."""
        code = self.code
        for b, insn in code.insns.items():
            if insn.kind not in (a64.BRANCH_REG, a64.CALL_REG):
                continue
            targets, how, table = code.computed_targets(b) if insn.kind == a64.BRANCH_REG else ([], "", None)
            if how == "address table" and table is not None and table <= o < table + 8 * max(len(targets), 1) + 8:
                w = code._writer(b, sorted(insn.reads)[0])
                return f"{code.display(w)} at {code.loc(w)} reads it and {insn.text} at {code.loc(b)} jumps there"
        return ""

    def _absolute_guesses(self, literal_users: dict) -> None:
        """A linked ELF without relocations: literal and data words whose value is the link address
        of a symbol in the range (what .quad label and ldr =label leave behind)."""
        code = self.code
        starts = {o for o, _ in self.img.symbols_between(self.rng.section, self.rng.start, self.rng.end)}
        for o in range(self.rng.start + (-self.rng.start) % 8, self.rng.end - 7, 8):
            if (o in code.insns and o not in literal_users) or (not code.has_mapping and o not in literal_users):
                continue
            value = code.words.get(o, 0) | code.words.get(o + 4, 0) << 32
            off = value - code.base
            if not value or off not in starts or off == o:
                continue
            name = code.loc(off)
            users = literal_users.get(o, [])
            where = users[0] if users else o
            what = (f"{code.insns[where].text.split(' ')[0]} {_dest(code.insns[where])}, ={name}  "
                    f"(literal {value:#x} at {code.loc(o)})"
                    if users else f".quad {value:#x}  (= {name})")
            self.add("absolute-address", "error", where, what,
                     f"this word holds {value:#x}, the link-time address of {name} (the ELF carries no "
                     "relocations to be sure; link with -q/--emit-relocs to keep them): an absolute address. "
                     + self._BREAKS)

    # --- references out of the range, ADRP ---

    def check_references(self) -> None:
        code = self.code
        for o, insn in code.insns.items():
            if insn.kind not in (a64.BRANCH, a64.COND_BRANCH, a64.CALL, a64.ADR, a64.ADRP, a64.LITERAL):
                continue
            if not self.reported(o):
                continue
            if o in code.relocs and code.relocs[o].type in GOT:
                continue
            t = code.target(o)
            if t is None:
                continue
            if code.in_range(t):
                if insn.kind == a64.ADRP:
                    self._adrp_in_range(o, t)
                continue
            self._leaves(o, insn, t)
        for o, r in code.relocs.items():
            if r.type in PREL_DATA and not code.in_range(r.target):
                self.add("leaves-copy", "error", o, f".word {r.target.name} - .  ({r.type})",
                         f"a PC-relative data word pointing at {r.target.name}, outside the copied code: after the "
                         "copy it points beside the copy, not at the target.")

    def _leaves(self, o: int, insn: a64.A64Insn, t: Target) -> None:
        code = self.code
        where = ("an undefined symbol: kernel code or data, at a kernel virtual address" if t.kind == "undefined"
                 else f"outside the copied range {code.loc(self.rng.start)}..+{self.rng.end - self.rng.start:#x}")
        if insn.kind in (a64.BRANCH, a64.COND_BRANCH, a64.CALL):
            verb = "calls" if insn.kind == a64.CALL else "branches to"
            why = (f"this {verb} {t.name}, {where}. The branch is PC-relative, so after the copy it lands "
                   f"the same distance from the copy, in whatever physical memory is there; and kernel code "
                   "would not run at EL2 anyway (it uses kernel virtual addresses, and EL2's MMU is off).")
        elif insn.kind == a64.ADRP:
            why = (f"adrp computes the 4 KiB page of {t.name}, {where}, relative to this instruction: after the "
                   "copy it gives a page near the copy, not the target's.")
        else:
            why = (f"this takes the address of {t.name}, {where}, relative to this instruction: after the copy "
                   "it points beside the copy, not at the target (and kernel data is at kernel virtual "
                   "addresses, which EL2 with its MMU off cannot use).")
        self.add("leaves-copy", "error", o, code.display(o), why)

    def _adrp_in_range(self, o: int, t: Target) -> None:
        code = self.code
        insn = code.insns[o]
        reg = sorted(insn.writes)[0] if insn.writes else None
        pair = [o]
        p = o + 4
        while reg and p in code.insns and p < o + 32:
            q = code.insns[p]
            if reg in q.reads:
                pair.append(p)
                break
            if reg in q.writes or q.ends_flow:
                break
            p += 4
        align = self.img.sections[self.rng.section].align
        if align >= PAGE and self.rng.start % PAGE == 0:
            keep = (f"{self.rng.section_name} is {align:#x}-aligned, so copying it from its start to a "
                    "page-aligned destination keeps it")
        else:
            keep = (f"{self.rng.section_name} is only {align:#x}-aligned (and the copy starts at +"
                    f"{self.rng.start:#x}), so where the loader puts it and the page it is copied to can differ "
                    "inside a page")
        self.add("adrp-page", "warning", o, "; ".join(code.display(p) for p in pair),
                 f"adrp gives the 4 KiB page of {t.name} as a distance in pages from this instruction's page: "
                 "it is still right after the copy only if the copy keeps the code's offset within a 4 KiB "
                 f"page (destination = source modulo 0x1000); {keep}. adr (+/-1 MiB) has no such condition.")

    # --- the vector table ---

    def find_vector_tables(self) -> list[int]:
        code = self.code
        found = set()
        for o, insn in code.insns.items():
            if insn.kind == a64.MSR and insn.sysreg == "VBAR_EL2" and insn.reads:
                v = code._adr_value(o, sorted(insn.reads)[0])
                if v is not None:
                    found.add(v)
        for off, sym in self.img.symbols_between(self.rng.section, self.rng.start, self.rng.end):
            # named like a table (..._vectors, vector_table, ...vbar) and on a slot boundary at least:
            # a table aligned to 0x80 but not to 2 KiB is a bug to report, a function is not a table
            low = sym.raw_name.lower()
            if (any(w in low for w in _VECTOR_WORDS) and not any(w in low for w in _SLOT_WORDS)
                    and off % vectors.SLOT_SIZE == 0 and sym.type != "STT_OBJECT"):
                found.add(off)
        if not found and self._looks_like_table(self.rng.start):
            found.add(self.rng.start)
        return sorted(found)

    def _looks_like_table(self, t: int) -> bool:
        code = self.code
        if self.rng.end - t < vectors.TABLE_SIZE:
            return False
        starts = [t + s for s, _ in vectors.slots()]
        filled = [s for s in starts if s in code.insns and code.insns[s].kind != a64.PADDING]
        bounded = [s for s in starts[1:] if s - 4 not in code.insns or code.insns[s - 4].ends_flow]
        return len(filled) >= 8 and len(bounded) >= 12

    def check_vector_table(self, t: int) -> None:
        code = self.code
        name = code.loc(t)
        sec = self.img.sections[self.rng.section]
        rel = t - self.rng.start
        if t % VECTOR_TABLE_ALIGN or sec.align < VECTOR_TABLE_ALIGN:
            self.add("vector-table", "error", t, f"vector table {name}",
                     f"the table is at offset {t:#x} of {sec.name}, which is aligned to {sec.align:#x}: VBAR_EL2 "
                     "bits [10:0] are RES0, so a table must start on a 2 KiB boundary (.balign 2048, and a "
                     "section aligned at least that much) or exceptions enter at the wrong place.")
        elif rel % VECTOR_TABLE_ALIGN:
            self.add("vector-table", "error", t, f"vector table {name}",
                     f"the table is {rel:#x} bytes into the copied range: copied to a page, it lands at a "
                     "destination that is not 2 KiB aligned (VBAR_EL2 bits [10:0] are RES0).")
        if self.rng.end - t < vectors.TABLE_SIZE:
            missing = (t + vectors.TABLE_SIZE - self.rng.end + vectors.SLOT_SIZE - 1) // vectors.SLOT_SIZE
            self.add("vector-table", "error", t, f"vector table {name}",
                     f"a vector table is 16 slots of 0x80 bytes (2 KiB), but the copied code ends "
                     f"{self.rng.end - t:#x} bytes after it: the last {missing} slot(s) are not copied and "
                     "whatever follows the copy runs for those exceptions.")
        empty = []
        for s, slot in vectors.slots():
            o = t + s
            if o >= self.rng.end:
                break
            insn = code.insns.get(o)
            if insn is None or insn.kind == a64.PADDING:
                empty.append((s, slot))
                continue
            self._slot_flow(t, s, slot)
        lower = [x for x in empty if x[0] == vectors.LOWER_A64_SYNC]
        if lower:
            self.add("vector-table", "error", t + vectors.LOWER_A64_SYNC, code.display(t + vectors.LOWER_A64_SYNC),
                     "the Lower EL using AArch64, Synchronous slot (+0x400) is empty: every HVC from EL1 lands "
                     "there and runs the padding (an undefined instruction at EL2, taken to this table's own "
                     "Current EL slot).")
        others = [x for x in empty if x[0] != vectors.LOWER_A64_SYNC]
        if others and len(empty) < 16:
            listed = ", ".join(f"+{s:#05x} {slot}" for s, slot in others)
            self.add("vector-table", "warning", t + others[0][0], f"{len(others)} empty slot(s)",
                     f"these slots hold no code: {listed}. If such an exception is ever taken to EL2 (an IRQ "
                     "routed by HCR_EL2.IMO, an SError by HCR_EL2.AMO, a fault at EL2 itself), the CPU runs "
                     "the padding: an undefined instruction, taken again at EL2, forever. Put a branch to a "
                     "handler that records and parks in each.")

    def _slot_flow(self, t: int, s: int, slot: str) -> None:
        """Straight-line code from a slot start must end (b, eret, ...) before the next slot."""
        code = self.code
        o = t + s
        end = o + vectors.SLOT_SIZE
        while o < end:
            insn = code.insns.get(o)
            if insn is None:
                self.add("vector-table", "error", t + s, code.display(t + s),
                         f"the {slot} slot (+{s:#05x}) runs into data at {code.loc(o)} without a branch.")
                return
            if insn.kind == a64.PADDING:
                self.add("vector-table", "error", t + s, code.display(t + s),
                         f"the {slot} slot (+{s:#05x}) falls through into padding at {code.loc(o)}: the code "
                         "ends without a branch or eret, and the next word is an undefined instruction.")
                return
            if insn.ends_flow:
                return
            o += 4
        nxt = s + vectors.SLOT_SIZE
        into = (f"the next slot (+{nxt:#05x} {vectors.slot_name(nxt)})" if nxt < vectors.TABLE_SIZE
                else "the code after the table")
        last = max((p for p in range(t + s, end, 4) if code.insns[p].kind != a64.NOP), default=None)
        if last is not None and last < end - 4:
            how = (f"its code ends at {code.loc(last)} ({code.display(last)}) without a branch or eret, and the "
                   "alignment nops after it")
        else:
            how = "it holds 32 instructions (0x80 bytes) and no branch or eret: it"
        self.add("vector-table", "error", t + s, code.display(t + s),
                 f"the {slot} slot (+{s:#05x}) falls through: {how} runs into {into}. End each slot with a "
                 "branch to its handler.")

    # --- paths from the entries: stack and ERET ---

    def _entries(self) -> list[tuple[int, str, str]]:
        """(offset, what, kind): vector slots (exception entry) and a linked ELF's entry point."""
        out = []
        for t in self.tables:
            for s, slot in vectors.slots():
                o = t + s
                if o in self.code.insns and self.code.insns[o].kind != a64.PADDING:
                    out.append((o, f"the {slot} vector", "exception"))
        e = self.img.entry
        if e is not None and self.img.kind == "linked":
            loc = self.img.section_at_address(e)
            if loc and self.rng.contains(*loc) and loc[1] not in self.tables:
                out.append((loc[1], f"the entry point {self.code.loc(loc[1])}", "branch"))
        return out

    def check_paths(self) -> None:
        code = self.code
        entries = self._entries()
        setters = [o for o, i in code.insns.items() if i.sets_sp() and self.reported(o)]
        stack_events: dict[int, int] = {}
        eret_events: dict[int, tuple] = {}
        seen = set()
        work = []
        for n, (o, _, kind) in enumerate(entries):
            if kind == "exception":
                work.append(_State(o, n, UNSET, EXC, EXC, None, ()))
            else:
                work.append(_State(o, n, UNSET, UNSET, UNSET, None, ()))
        while work and len(seen) < MAX_STATES:
            s = work.pop()
            if s in seen or s.offset not in code.insns:
                continue
            seen.add(s)
            o = s.offset
            insn = code.insns[o]
            sp, elr, spsr, clobber = s.sp, s.elr, s.spsr, s.clobber
            if sp == UNSET and (insn.uses_sp_for_memory() or insn.adjusts_sp()):
                stack_events.setdefault(o, s.origin)
                sp = REPORTED
            if insn.sets_sp():
                sp = SET
            if insn.kind == a64.MSR and insn.sysreg == "ELR_EL2":
                elr = SET
            if insn.kind == a64.MSR and insn.sysreg == "SPSR_EL2":
                spsr = SET
            if insn.kind == a64.EXCEPTION and not self._is_smc(insn):
                elr = spsr = CLOBBERED
                clobber = o
            if insn.kind == a64.ERET and (elr in (UNSET, CLOBBERED) or spsr in (UNSET, CLOBBERED)):
                eret_events.setdefault(o, (s.origin, elr, spsr, clobber))
            nexts: list[tuple[int, tuple]] = []
            if insn.kind == a64.CALL:
                t = code.target_offset(o)
                if t is not None and len(s.calls) < MAX_CALL_DEPTH:
                    nexts.append((t, s.calls + (o + 4,)))
                elif o + 4 in code.insns:
                    nexts.append((o + 4, s.calls))
            elif insn.kind == a64.RET and s.calls:
                nexts.append((s.calls[-1], s.calls[:-1]))
            else:
                nexts += [(n, s.calls) for n in code.successors(o)]
            for n, calls in nexts:
                work.append(_State(n, s.origin, sp, elr, spsr, clobber, calls))
        for o, origin in sorted(stack_events.items()):
            self._stack_event(o, entries[origin][1], setters)
        for o, (origin, elr, spsr, clobber) in sorted(eret_events.items()):
            self._eret_event(o, entries[origin][1], elr, spsr, clobber)

    @staticmethod
    def _is_smc(insn: a64.A64Insn) -> bool:
        # SMC (0xd4000003 | imm16 << 5) goes to EL3, which leaves ELR_EL2/SPSR_EL2 alone.
        return insn.word & 0xFFE0001F == 0xD4000003

    def _stack_event(self, o: int, origin: str, setters: list[int]) -> None:
        code = self.code
        insn = code.insns[o]
        use = (("stores to" if insn.mem_write else "loads from") if insn.uses_sp_for_memory() else "moves")
        if setters:
            s = setters[0]
            self.notes.append(Note(code.loc(o),
                                   f"{code.display(o)} {use} the stack (SP_EL2) and nothing on the way from {origin} "
                                   "sets SP_EL2; "
                                   f"{code.display(s)} at {code.loc(s)} sets it in another handler. An HVC that "
                                   "reaches it must run on every CPU (SP_EL2 is per CPU) before any call that "
                                   "gets here."))
            return
        self.add("stack-unset", "error", o, code.display(o),
                 f"this {use} the stack (SP_EL2), and no path from {origin} sets SP_EL2, nor does any other code "
                 "in the copy. Nothing sets SP_EL2 after early boot (the kernel's hyp-stub uses no stack), so it "
                 "holds whatever boot left, a physical address in memory the kernel now owns: the push overwrites "
                 "kernel memory silently, or faults. Set it (mov sp, xN) from a per-CPU stack's physical address, "
                 "in this path or with an HVC called on every CPU.")

    def _eret_event(self, o: int, origin: str, elr: str, spsr: str, clobber: int | None) -> None:
        code = self.code
        bad = [n for n, v in (("ELR_EL2", elr), ("SPSR_EL2", spsr)) if v in (UNSET, CLOBBERED)]
        if CLOBBERED in (elr, spsr) and clobber is not None:
            why = (f"on a path from {origin}, {code.display(clobber)} at {code.loc(clobber)} takes an exception to "
                   f"EL2 from EL2, which overwrites {' and '.join(bad)} with its own return state; this eret then "
                   "returns there instead of to the code that entered EL2. Save them (mrs) before and restore "
                   "them (msr) after.")
        else:
            why = (f"on a path from {origin}, which is not an exception entry, nothing writes {' and '.join(bad)} "
                   f"before this eret: it returns to whatever the last exception into EL2 left there. Set "
                   "ELR_EL2 (where to go) and SPSR_EL2 (the EL and masks to go with) first.")
        self.add("eret-state", "error", o, code.display(o), why)

    # --- system register writes that need an ISB ---

    def check_isb(self) -> None:
        code = self.code
        for o, insn in code.insns.items():
            if insn.kind != a64.MSR or insn.sysreg not in a64.NEEDS_CONTEXT_SYNC or not self.reported(o):
                continue
            hit = self._before_sync(o, insn.sysreg)
            if hit is None:
                continue
            p, how = hit
            self.add("needs-isb", "warning" if how == "leaves" else "error", o, code.display(o),
                     f"a write to {insn.sysreg} ({a64.NEEDS_CONTEXT_SYNC[insn.sysreg]}) is only guaranteed to take "
                     "effect after a context synchronization event (an ISB, or the ERET that leaves EL2); "
                     + (f"{code.display(p)} at {code.loc(p)} runs before one and may still see the old value."
                        if p is not None and how != "leaves" else
                        f"{code.display(p)} at {code.loc(p)} leaves this code before one." if p is not None else
                        "the code ends before one.") + " Put an isb right after the msr.")

    def _before_sync(self, o: int, reg: str) -> tuple[int | None, str] | None:
        code = self.code
        seen = set()
        work = [n for n in code.successors(o)] if code.insns[o].kind != a64.CALL else []
        if not work and o + 4 not in code.insns:
            return (None, "leaves")
        while work and len(seen) < 512:
            p = work.pop()
            if p in seen or p not in code.insns:
                continue
            seen.add(p)
            q = code.insns[p]
            if q.kind in (a64.ISB, a64.ERET):
                continue
            if self._depends(reg, q):
                return (p, "depends")
            if q.kind in (a64.CALL, a64.CALL_REG, a64.RET) or (q.kind == a64.BRANCH_REG and not code.successors(p)):
                return (p, "leaves")
            if q.kind in (a64.BRANCH, a64.COND_BRANCH) and code.target_offset(p) is None:
                return (p, "leaves")
            work.extend(code.successors(p))
        return None

    @staticmethod
    def _depends(reg: str, q: a64.A64Insn) -> bool:
        exceptions = q.kind in (a64.EXCEPTION, a64.TRAP)
        if reg == "VBAR_EL2":
            return exceptions or (q.kind == a64.MSR_PSTATE and q.pstate == "DAIFClr")
        if reg == "SCTLR_EL2":
            return exceptions or q.kind in (a64.MEMORY, a64.LITERAL, a64.CACHE_TLB)
        if reg == "HCR_EL2":
            el01 = q.kind in (a64.MRS, a64.MSR) and q.sysreg is not None and q.sysreg.endswith(("_EL1", "_EL0"))
            return exceptions or q.kind == a64.CACHE_TLB or el01
        return q.kind == a64.CACHE_TLB  # VTTBR_EL2: AT S12E1*, TLBI by VMID

    # --- EL1 registers ---

    def check_el1_registers(self) -> None:
        code = self.code
        for o, insn in code.insns.items():
            if insn.kind not in (a64.MRS, a64.MSR) or insn.sysreg not in a64.EL2_COUNTERPART or not self.reported(o):
                continue
            if self._context_switch(o, insn):
                continue
            el2 = a64.EL2_COUNTERPART[insn.sysreg]
            verb = "reads" if insn.kind == a64.MRS else "writes"
            if insn.sysreg in a64.EXCEPTION_STATE_EL1:
                about = (f"{insn.sysreg} describes the last exception taken to EL1, not the one that brought the "
                         f"CPU to EL2 ({el2} does)")
            else:
                about = f"{insn.sysreg} is EL1's register; EL2's own is {el2}"
            self.add("el1-register", "warning", o, code.display(o),
                     f"at EL2 this {verb} {insn.sysreg}: {about}. With HCR_EL2.E2H == 1 (VHE) the same encoding "
                     f"reaches {el2} instead, so the code means different things on different hosts. Right only "
                     "when saving or restoring EL1's context; otherwise name the EL2 register.")

    def _context_switch(self, o: int, insn) -> bool:
        """A world switch saving or loading EL1's context: `mrs xN, <EL1 reg>` straight into a store of
        xN, or `msr <EL1 reg>, xN` straight from a load of xN. Saving and restoring is the one right use."""
        if insn.kind == a64.MRS:
            nxt = self.code.insns.get(o + 4)
            return bool(nxt and nxt.kind == a64.MEMORY and nxt.mem_write and insn.writes & nxt.reads)
        prev = self.code.insns.get(o - 4)
        return bool(prev and prev.kind == a64.MEMORY and not prev.mem_write and insn.reads & prev.writes)

    def check_shared_stack(self) -> None:
        """mov sp, xN where xN is an adr result and no per-CPU value (MPIDR_EL1, TPIDR_EL2) went into it."""
        code = self.code
        for o, insn in code.insns.items():
            if not insn.sets_sp() or not self.reported(o):
                continue
            need = set(insn.reads) - {"sp"}
            from_adr = per_cpu = False
            p = o - 4
            steps = 0
            while need and p in code.insns and steps < 16 and not code.insns[p].ends_flow:
                q = code.insns[p]
                if q.writes & need:
                    if q.kind in (a64.ADR, a64.ADRP):
                        from_adr = True
                    if q.kind == a64.MRS and q.sysreg in a64.PER_CPU_SOURCES:
                        per_cpu = True
                    need = (need - q.writes) | (set(q.reads) - {"sp", "nzcv"})
                p -= 4
                steps += 1
            if from_adr and not per_cpu and not need:
                self.add("stack-unset", "warning", o, code.display(o),
                         "SP_EL2 is set to an address computed by adr alone, the same on every CPU: two CPUs at "
                         "EL2 at once (an HVC on each) push onto one stack and corrupt each other. Add an offset "
                         "from MPIDR_EL1 (or a per-CPU value the caller passes) to give each CPU its own stack.")

    # --- what the copy must keep ---

    def copy_requirements(self) -> None:
        align, why = 4, "instructions"
        if self.tables:
            align, why = VECTOR_TABLE_ALIGN, "the vector table (VBAR_EL2 bits [10:0] are RES0)"
        if any(f.check == "adrp-page" for f in self.findings.values()):
            align, why = PAGE, "the ADRP pairs (same offset within a 4 KiB page)"
        self.report.copy_alignment = align
        size = self.rng.end - self.rng.start
        self.notes.append(Note(self.code.loc(self.rng.start),
                               f"copy {size:#x} bytes from {self.code.loc(self.rng.start)} to a destination aligned "
                               f"to {align:#x} for {why}; clean the data cache and invalidate the instruction "
                               "cache to the point of unification over the copy before EL2 runs it."))


def check_range(img: ElfImage, rng: CodeRange) -> tuple[RangeReport, list[Finding], list[Note]]:
    c = Checker(img, rng)
    c.run()
    findings = sorted(c.findings.values(), key=lambda f: (f.offset, f.check))
    return c.report, findings, c.notes

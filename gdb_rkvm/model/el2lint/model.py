"""What the EL2 lint reports: typed findings and notes, independent of how they are printed."""

from dataclasses import asdict, dataclass, field

# check name -> what it is about (the README and `help rkvm lint-el2` list these)
CHECKS = {
    "absolute-address": "an absolute address in the code or its data (.quad label, ldr =label, movz/movk of an "
                        "address): the loader fills in a kernel VA, meaningless at EL2 with the MMU off",
    "adrp-page": "an ADRP pair: right after the copy only if the copy keeps the offset within a 4 KiB page",
    "leaves-copy": "a branch, call or PC-relative reference to something outside the copied code",
    "vector-table": "the vector table: 2 KiB alignment, 16 slots of 0x80 bytes, no slot running into the next, "
                    "no empty slot",
    "stack-unset": "the stack used on a path where nothing set SP_EL2",
    "needs-isb": "a write to VBAR_EL2, HCR_EL2, SCTLR_EL2 or VTTBR_EL2 relied on before a context "
                 "synchronization (ISB or ERET)",
    "eret-state": "an ERET on a path where ELR_EL2/SPSR_EL2 were not set, or were overwritten by an exception "
                  "taken at EL2",
    "el1-register": "an EL1 register used at EL2 where the EL2 one is usually meant",
}

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Finding:
    check: str           # a key of CHECKS
    severity: str        # error | warning
    section: str
    offset: int          # in the section
    location: str        # 'symbol+0x10'
    what: str            # the instruction or the data word
    why: str             # a plain sentence: why it breaks at EL2, MMU off, after a copy

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Note:
    location: str
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RangeReport:
    section: str
    start: int
    end: int
    how: str
    vector_tables: list = field(default_factory=list)    # ['rkvm_stub_vectors (+0x0)']
    copy_alignment: int = 4                              # what the destination of the copy must keep

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    file: str
    kind: str                        # object | module | linked
    relocations: bool                # whether the file carries relocations (a linked ELF without -q does not)
    ranges: list = field(default_factory=list)      # [RangeReport]
    findings: list = field(default_factory=list)    # [Finding]
    notes: list = field(default_factory=list)       # [Note]

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "relocations": self.relocations, "clean": self.clean,
                "ranges": [r.to_dict() for r in self.ranges], "findings": [f.to_dict() for f in self.findings],
                "notes": [n.to_dict() for n in self.notes]}

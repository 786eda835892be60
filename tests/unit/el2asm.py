"""Small EL2 objects for the lint's tests, assembled with the cross toolchain the lab uses.

`vector_object(handler=..., extra=...)` is a 2 KiB-aligned table whose 16 slots branch to `park`,
except Lower EL AArch64 Synchronous (+0x400), which branches to `handler`: the HVC path. Tests put
the construct under test in the handler (or in `extra`, after the park loop).
"""

import hashlib
import subprocess
from pathlib import Path

AS = "aarch64-linux-gnu-gcc"
LD = "aarch64-linux-gnu-ld"

TEMPLATE = """\
	.section .text.el2, "ax"
	.balign {align}
	.globl	vectors
vectors:
{slots}
	.balign	0x80
	.globl	handler
handler:
{handler}
	.globl	park
park:
	wfe
	b	park
{extra}
	.globl	el2_end
el2_end:
"""

OK_HANDLER = "\tmov\tx0, #0\n\teret"


def _slots(empty: tuple = (), body: dict | None = None, slot_align: int = 0x80) -> str:
    out = []
    for n in range(16):
        out.append(f"\t.balign\t{slot_align}")
        if n in (body or {}):
            out.append(body[n])
        elif n in empty:
            out.append("\t.skip\t4")
        elif n == 8:
            out.append("\tb\thandler")
        else:
            out.append("\tb\tpark")
    return "\n".join(out)


def vector_source(handler: str = OK_HANDLER, extra: str = "", empty: tuple = (), body: dict | None = None,
                  align: int = 2048, slot_align: int = 0x80) -> str:
    return TEMPLATE.format(align=align, slots=_slots(empty, body, slot_align), handler=handler, extra=extra)


def assemble(tmp: Path, source: str, name: str | None = None) -> Path:
    """source -> tmp/NAME.o (the name defaults to a hash of the source, so a cache)."""
    name = name or hashlib.sha1(source.encode()).hexdigest()[:16]
    src = Path(tmp) / f"{name}.S"
    obj = Path(tmp) / f"{name}.o"
    if obj.exists():
        return obj
    src.write_text(source)
    res = subprocess.run([AS, "-c", "-o", str(obj), str(src)], capture_output=True, text=True)
    if res.returncode:
        raise AssertionError(f"assembler failed:\n{res.stderr}\n{source}")
    return obj


def link(tmp: Path, obj: Path, entry: str = "vectors", keep_relocs: bool = True) -> Path:
    """obj linked at 0 (like the stub's ELF), with its relocations (-q) unless keep_relocs is False."""
    out = obj.with_suffix(".q.elf" if keep_relocs else ".elf")
    args = [LD, "-nostdlib", "--no-warn-rwx-segments", "-e", entry, "-Ttext=0", "-o", str(out), str(obj)]
    if keep_relocs:
        args.insert(2, "-q")
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode:
        raise AssertionError(res.stderr)
    return out


def vector_object(tmp: Path, **kwargs) -> Path:
    return assemble(tmp, vector_source(**kwargs))

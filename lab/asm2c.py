"""Turn the preprocessed EL2 stub (gcc -E -P el2_stub.S) into a C header holding it as a top-level
asm() block, so that it is assembled into rkvm.ko itself, relocations and all, like a Rust
`global_asm!` stub would be:  asm2c.py BLOB_NAME < stub.s > header.h

In the module the stub lives in its own section, .text.rkvm_stub_jt, starting at BLOB_NAME. Its
labels become assembler-local (.L...) and its macros get a private prefix, so nothing clashes with
the kernel's own asm or with the stub ELF's symbols that GDB loads at the stub's physical address.
"""
import re
import sys

name = sys.argv[1]
text = sys.stdin.read()
section = re.compile(r'^\s*\.section\s+\.text\.rkvm_stub\s*,\s*"ax"\s*$', re.MULTILINE)
if len(section.findall(text)) != 1:
    sys.exit("asm2c: expected exactly one '.section .text.rkvm_stub, \"ax\"' line in the stub")
text = re.sub(r"^\s*\.(globl|type)\b.*$\n?", "", text, flags=re.MULTILINE)
text = re.sub(r"\brkvm_(stub|vec)_(\w+)", r".Lrkvm_jt_\1_\2", text)
macros = re.findall(r"^\s*\.macro\s+(\w+)", text, flags=re.MULTILINE)
for m in macros:
    text = re.sub(rf"\b{m}\b", f"rkvm_jt_{m}", text)
text = section.sub(f'\t.pushsection .text.rkvm_stub_jt, "ax"\n\t.globl {name}\n\t.type {name}, %object\n'
                   f"\t.balign 2048\n{name}:", text)
text += "".join(f"\t.purgem rkvm_jt_{m}\n" for m in macros)
text += f"\t.size {name}, . - {name}\n\t.popsection\n"

print("/* generated from stub/el2_stub.S by lab/asm2c.py: the stub assembled into the module */")
print("asm(")
for line in text.splitlines():
    if line.strip():
        print('"' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"')
print(");")

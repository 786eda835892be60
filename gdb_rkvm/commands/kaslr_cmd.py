from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import kaslr
from gdb_rkvm.commands.base import SESSION, STOPPED, RkvmCommand, only_when


@only_when(SESSION, STOPPED)
class RkvmKaslr(RkvmCommand):
    """What gdb-rkvm found about KASLR: the slide, how it was found, whether symbols are relocated.

Usage: rkvm kaslr [--json]
The slide is VBAR_EL1 (the runtime address of the kernel's `vectors`) minus vmlinux's `vectors`;
vmlinux is then reloaded with `symbol-file -o SLIDE`. This command checks again now.
Example:
  (gdb) rkvm kaslr
  KASLR slide 0x1e82c00000: VBAR_EL1 of CPU 0 = 0xffff801f02c10800, vmlinux's vectors = 0xffff800080010800"""

    name = "kaslr"

    def run(self, args):
        vmlinux = kaslr.vmlinux_path()
        if vmlinux is None:
            raise RkvmError("no vmlinux in this session: nothing to relocate")
        line = kaslr.update(vmlinux)
        st = kaslr.status()
        st["pending"] = not st.get("known_now") and kaslr.kaslr_capable(vmlinux)
        return {"capable": kaslr.kaslr_capable(vmlinux), "known": bool(st.get("known_now")),
                "slide": st.get("slide") if st.get("known_now") else None, "how": st.get("how"),
                "changed": line}

    def format(self, r, args):
        if not r["capable"]:
            return "this vmlinux is not built with KASLR (CONFIG_RANDOMIZE_BASE): symbols are where vmlinux says"
        if not r["known"]:
            return f"KASLR slide not known yet: {r['how']}; symbols are not shown until it is"
        text = f"KASLR slide {r['slide']:#x}: {r['how']}"
        return text + (f"\n{r['changed']}" if r["changed"] else "")

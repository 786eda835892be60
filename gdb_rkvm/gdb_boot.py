"""What `gdb -x rkvm.py` does: symbols, the kernel's GDB helpers, the connection, the commands.

Everything here runs inside GDB. Problems are reported as one line and GDB stays usable.
"""

from pathlib import Path

import gdb

from gdb_rkvm.qemu import session as session_mod
from gdb_rkvm.commands import lx_symbols, register_all
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import el2_symbols, kaslr, module_symbols, resume, symbol_files, vbar_watch
from gdb_rkvm.live.gdb_state import STATE, command_settings, notice, quietly
from gdb_rkvm.model.guest_text import escape


def _say(text: str) -> None:
    gdb.write(f"rkvm: {text}\n")


def _quiet(cmd: str) -> str:
    return gdb.execute(cmd, to_string=True)


def load_symbols(sess) -> None:
    vmlinux = Path(sess.vmlinux) if sess.vmlinux else None
    if vmlinux is None or not vmlinux.is_file():
        _say(f"no vmlinux at '{sess.vmlinux}': continuing without kernel symbols "
             "(set it with --set vmlinux=PATH)")
        return
    from gdb_rkvm.model.elf_check import check_vmlinux
    check_vmlinux(vmlinux)
    # GDB's own auto-load of vmlinux-gdb.py, nested inside this script, runs it with rkvm.py's
    # __file__, so its `scripts/gdb` import path points here: load it ourselves with its own name.
    symbol_files.load_vmlinux(str(vmlinux), 0)
    # A later `file`/`lx-symbols` by the user lets GDB auto-load the script again: allow it for this
    # kernel's directory only (a no-op then, its modules are imported), instead of GDB's ten-line
    # safe-path warning.
    # (In a kernel build tree the script is a symlink into the source: GDB checks where it points.)
    script = vmlinux.parent / "vmlinux-gdb.py"
    for trusted in {vmlinux.parent, script.resolve().parent if script.exists() else vmlinux.parent}:
        # This command takes the rest of the line, unquoted, as a ':'-separated list.
        if ":" not in str(trusted) and str(trusted).isprintable():
            _quiet(f"add-auto-load-safe-path {trusted}")
    if sess.gdb_scripts and Path(sess.gdb_scripts).is_file():
        load_kernel_helpers(Path(sess.gdb_scripts))


def load_kernel_helpers(script: Path) -> None:
    """Run the kernel's vmlinux-gdb.py (the lx-* commands) with __file__ set to its path."""
    import sys
    try:
        code = compile(script.read_text(), str(script), "exec")
        exec(code, {"__file__": str(script), "__name__": "__main__", "gdb": gdb, "sys": sys})
    except Exception as e:  # noqa: BLE001  the kernel's script: any failure is reported, not fatal
        _say(f"the kernel's GDB helpers (lx-*) did not load from {script}: {e}")


def connect(sess) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in str(sess.gdb_address)):  # would be a second command
        raise RkvmError(f"gdbstub address '{escape(str(sess.gdb_address))}' refused: it holds control characters")
    try:
        _quiet(f"target remote {sess.gdb_address}")
    except gdb.error as e:
        raise RkvmError(f"cannot connect to QEMU's gdbstub at {sess.gdb_address}: {e}") from None
    # QEMU keeps the physical-memory mode across connections: a GDB killed inside a physical read
    # would leave this one reading physical memory for virtual addresses. Back to virtual first.
    try:
        _quiet("maint packet Qqemu.PhyMemMode:0")
    except gdb.error:
        pass  # not QEMU's gdbstub: it has no such mode


def _kaslr_at_attach(sess) -> None:
    """A randomized kernel's symbols are wrong until the slide is known: run the guest until it has
    relocated itself (VBAR_EL1 set), bounded, then relocate vmlinux; check again at every stop."""
    if "nokaslr" in sess.kernel_cmdline.split() or not kaslr.kaslr_capable(sess.vmlinux):
        return
    kaslr.status()["pending"] = True
    for _ in range(50):  # 10 s of guest time at most
        try:
            kaslr.update(sess.vmlinux)
        except (RkvmError, gdb.error) as e:
            _say(f"KASLR slide not found: {e}")
            return
        if kaslr.status().get("known_now"):
            break
        resume.continue_until(resume.Deadline(0.2), grace=0.0)
    gdb.events.stop.connect(_kaslr_on_stop)  # after: a reboot moves the kernel again
    st = kaslr.status()
    if st.get("known_now"):
        st["pending"] = False
        _say(f"KASLR slide {st['slide']:#x}: vmlinux symbols relocated ({st['how']}); the guest ran to get there")
    else:
        _say("KASLR kernel: the slide is not known yet (VBAR_EL1 not set); symbols are not shown until it is")


def _kaslr_on_stop(event) -> None:
    sess = STATE.session
    if sess is None:
        return
    try:
        line = kaslr.update(sess.vmlinux)
    except (RkvmError, gdb.error):
        return
    kaslr.status()["pending"] = not kaslr.status().get("known_now")
    if line:
        notice(line + " (the guest rebooted or just relocated itself)")
        for text in module_symbols.load_already_loaded():
            notice(text)


def main() -> None:
    # GDB settings are the user's: commands set what they need while they run (command_settings).
    register_all()
    sess = session_mod.from_environment()
    if sess is None:
        _say("no session: start one with 'rkvm up', then restart GDB with 'gdb -x rkvm.py'")
        return
    STATE.session = sess
    STATE.module_dirs = list(sess.module_dirs)
    try:
        with command_settings():
            load_symbols(sess)
            connect(sess)
    except (RkvmError, gdb.error) as e:  # one line, never a traceback
        _say(escape(str(e)))
        return
    symbol_files.watch()
    if gdb.lookup_global_symbol("start_kernel") is not None:
        with command_settings():
            _attach_kernel(sess)
    _say(f"attached to {sess.profile} session (QEMU pid {sess.pid}, {sess.gdb_address}); 'help rkvm' lists commands")


def _attach_kernel(sess) -> None:
    _kaslr_at_attach(sess)
    lx_symbols.register_if_kernel_helpers()
    module_symbols.ModuleLoadBreakpoint()
    quietly(el2_symbols.InstallHookBreakpoint)
    gdb.events.stop.connect(vbar_watch.on_stop)
    for line in module_symbols.load_already_loaded():
        gdb.write(line + "\n")

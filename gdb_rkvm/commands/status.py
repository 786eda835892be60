import gdb

from gdb_rkvm.qemu import session as session_mod
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.commands.base import RkvmCommand


class RkvmStatus(RkvmCommand):
    """Show the session GDB is attached to: profile, QEMU pid, gdbstub, vCPUs, symbols.

Usage: rkvm status [--json]
Example:
  (gdb) rkvm status
  session   lab (QEMU pid 4242, gdbstub /home/you/gdb-rkvm/build/session/gdb.sock, alive)
  qmp       /home/you/gdb-rkvm/build/session/qmp.sock (QEMU: paused)
  memory    physical reads: shared RAM file, 2048 MiB at PA 0x40000000
  target    connected, 2 vCPUs, stopped"""

    name = "status"

    def run(self, args):
        from gdb_rkvm.live import physmem
        sess = STATE.session
        inferior = gdb.selected_inferior()
        threads = inferior.threads() if inferior is not None and inferior.pid else ()
        thread = gdb.selected_thread()
        if threads and not (thread is not None and thread.is_running()):
            physmem.backend()   # chosen at the first physical read: choose now, to say which
        return {
            "session": None if sess is None else {
                "profile": sess.profile, "pid": sess.pid, "gdb": sess.gdb_address, "alive": sess.alive(),
                "serial_log": sess.serial_log, "kernel_cmdline": sess.kernel_cmdline,
                "qmp_socket": sess.qmp_socket, "qemu_status": session_mod.qemu_status(sess),
                "exception_log": sess.exception_log,
            },
            "physical_reads": physmem.describe(),
            "connected": bool(threads),
            "vcpus": len(threads),
            "running": bool(thread is not None and thread.is_running()),
            "vmlinux": next((o.filename for o in gdb.objfiles() if o.filename.endswith("vmlinux")), None),
            "modules_with_symbols": {k: {"ko": v[0], "text": hex(v[1])} for k, v in STATE.loaded_modules.items()},
        }

    def format(self, r, args):
        s = r["session"]
        lines = []
        if s is None:
            lines.append("session   none (start one with 'rkvm up')")
        else:
            lines.append(f"session   {s['profile']} (QEMU pid {s['pid']}, gdbstub {s['gdb']}, "
                         f"{'alive' if s['alive'] else 'gone'})")
            lines.append(f"cmdline   {s['kernel_cmdline']}")
            if s["qmp_socket"]:
                lines.append(f"qmp       {s['qmp_socket']} (QEMU: {s['qemu_status'] or 'no answer'})")
        lines.append(f"memory    physical reads: {escape(r['physical_reads'])}")
        if r["connected"]:
            lines.append(f"target    connected, {r['vcpus']} vCPUs, {'running' if r['running'] else 'stopped'}")
        else:
            lines.append("target    not connected")
        lines.append(f"vmlinux   {r['vmlinux'] or 'not loaded'}")
        for name, m in r["modules_with_symbols"].items():
            lines.append(f"module    {escape(name)} at {m['text']} ({m['ko']})")
        return "\n".join(lines)

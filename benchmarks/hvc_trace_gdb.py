# Runs inside GDB after rkvm.py, stopped at rkvm.ko's installed-all. Writes JSON to $RKVM_BENCH_OUT.
# Starts an endless-enough burst of pings in the guest, then measures, on the same running burst:
#   plain: a plain GDB breakpoint on VBAR_EL2 + 0x400 with `commands / silent / continue / end`
#   rkvm:  `rkvm hvc trace --seconds S` (entries and returns, each logged with its x0)
import json
import os
import signal
import socket
import threading
import time

import gdb

from gdb_rkvm.target.gdb_state import STATE

WINDOW = float(os.environ.get("RKVM_BENCH_SECONDS", "5"))


def interrupt_after(seconds):
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    return timer


def type_when_prompt(text, then_interrupt_after=0.3):
    def go():
        log = STATE.session.serial_log
        for _ in range(600):
            data = open(log, "rb").read().decode(errors="replace")
            if "RKVM-LAB: shell ready" in data and "/ # " in data.split("RKVM-LAB: shell ready", 1)[1]:
                break
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(STATE.session.console_socket)
        s.sendall(text.encode())
        time.sleep(then_interrupt_after)  # the burst has started; stop the guest while it runs
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        s.close()
    threading.Thread(target=go, daemon=True).start()


# 1. get the burst going (the guest boots to its shell, we type, then stop it again)
type_when_prompt("echo burst 1000000 > /sys/kernel/debug/rkvm/hvc\n")
gdb.execute("continue", to_string=True)
vbar = int(gdb.parse_and_eval("$VBAR_EL2")) & ((1 << 64) - 1)

# 2. plain GDB
# The window ends through a convenience variable the commands test (set from GDB's own thread by
# post_event): a SIGINT landing while GDB runs the commands could be lost and the loop never end.
gdb.set_convenience_variable("rkvm_bench_done", 0)
gdb.execute(f"break *{vbar + 0x400:#x}", to_string=True)
bp = gdb.breakpoints()[-1]
bp.commands = "silent\nif $rkvm_bench_done == 0\n  continue\nend"
ender = threading.Timer(WINDOW, lambda: gdb.post_event(lambda: gdb.set_convenience_variable("rkvm_bench_done", 1)))
ender.daemon = True
ender.start()
t0 = time.monotonic()
try:
    gdb.execute("continue", to_string=True)
except gdb.error:
    pass
plain_seconds = time.monotonic() - t0
plain_hits = bp.hit_count
bp.delete()

# 3. rkvm hvc trace on the same burst: entries and returns, then entries only (plain GDB's work)
def trace(extra):
    out = gdb.execute(f"rkvm hvc trace --seconds {WINDOW} --json {extra}", to_string=True)
    r = json.loads(out[out.index("{"):out.rindex("}") + 1])
    return r["total"], r["seconds"]


full, full_s = trace("")
entries, entries_s = trace("--entries-only")
result = {"window": WINDOW, "plain_hits": plain_hits, "plain_seconds": plain_seconds,
          "plain_rate": plain_hits / plain_seconds, "rkvm_traps": full, "rkvm_seconds": full_s,
          "rkvm_rate": full / full_s, "entries_traps": entries, "entries_seconds": entries_s,
          "entries_rate": entries / entries_s}
result["ratio"] = result["rkvm_rate"] / result["plain_rate"]
result["entries_ratio"] = result["entries_rate"] / result["plain_rate"]
with open(os.environ["RKVM_BENCH_OUT"], "w") as f:
    json.dump(result, f)

# Runs inside GDB after rkvm.py, stopped at rkvm.ko's installed-all. Writes JSON to $RKVM_BENCH_OUT.
# Starts an endless burst of pings in the guest, then measures on it, in alternating windows
# (plain, log, args, entries, plain, log, ... RKVM_BENCH_ROUNDS rounds of RKVM_BENCH_SECONDS each), medians:
#   plain:   a plain GDB breakpoint on VBAR_EL2 + 0x400 with `commands / silent / continue / end` (entries)
#   log:     `rkvm hvc trace --seconds S` from QEMU's exception log (entries and their returns, no stop)
#   args:    `rkvm hvc trace --args --seconds S` (breakpoints: entries and returns with x0)
#   entries: `rkvm hvc trace --args --entries-only --seconds S` (breakpoints: plain GDB's work)
import json
import os
import signal
import socket
import statistics
import threading
import time

import gdb

from gdb_rkvm.live.gdb_state import STATE

WINDOW = float(os.environ.get("RKVM_BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("RKVM_BENCH_ROUNDS", "3"))


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


# 1. get the burst going (the guest boots to its shell, we type, then stop it again): bursts back to back
type_when_prompt("while true; do echo burst 1000000 > /sys/kernel/debug/rkvm/hvc; done\n")
gdb.execute("continue", to_string=True)
vbar = int(gdb.parse_and_eval("$VBAR_EL2")) & ((1 << 64) - 1)


def plain():
    # The window ends through a convenience variable the commands test (set from GDB's own thread by
    # post_event): a SIGINT landing while GDB runs the commands could be lost and the loop never end.
    gdb.set_convenience_variable("rkvm_bench_done", 0)
    gdb.execute("set rkvm vbar-watch off", to_string=True)   # plain GDB: no rkvm check at each stop
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
    seconds = time.monotonic() - t0
    hits = bp.hit_count
    bp.delete()
    gdb.execute("set rkvm vbar-watch on", to_string=True)
    return hits, seconds, hits


def trace(extra):
    t0 = time.monotonic()
    out = gdb.execute(f"rkvm hvc trace --seconds {WINDOW} --json {extra}", to_string=True)
    wall = time.monotonic() - t0
    r = json.loads(out[out.index("{"):out.rindex("}") + 1])
    transitions = sum(1 + (t.get("returned_to") is not None or t.get("ret") is not None) for t in r["traps"])
    return r["total"], r["seconds"], transitions, wall


ways = {"plain": plain, "log": lambda: trace(""), "args": lambda: trace("--args"),
        "entries": lambda: trace("--args --entries-only")}
rates = {k: [] for k in ways}
transition_rates = {k: [] for k in ways}
wall_rates = []
for _ in range(ROUNDS):
    for name, fn in ways.items():
        got = fn()
        rates[name].append(got[0] / got[1])
        transition_rates[name].append(got[2] / got[1])
        if name == "log":
            wall_rates.append(got[0] / got[3])
med = {k: statistics.median(v) for k, v in rates.items()}
tmed = {k: statistics.median(v) for k, v in transition_rates.items()}
result = {"window": WINDOW, "rounds": ROUNDS, "rates": rates, "median": med, "transitions_median": tmed,
          "log_wall_rate": statistics.median(wall_rates),
          "log_over_plain": med["log"] / med["plain"],
          "log_transitions_over_plain": tmed["log"] / tmed["plain"],
          "entries_over_plain": med["entries"] / med["plain"], "args_over_plain": med["args"] / med["plain"]}
with open(os.environ["RKVM_BENCH_OUT"], "w") as f:
    json.dump(result, f)

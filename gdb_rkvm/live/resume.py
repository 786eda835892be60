"""Resuming the guest from a command, always with a time bound.

Breakpoints that decide in Python check Deadline.passed() and stop the target themselves; a SIGINT
one second after the deadline covers the case where nothing would stop it at all. (A SIGINT alone is
not enough: one that lands while GDB is handling a breakpoint hit can be lost, and the guest runs on.)
"""

import os
import signal
import threading
import time

import gdb

from gdb_rkvm.arch.fields import MASK64


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self.end


def continue_until(deadline: Deadline, quiet: bool = True, grace: float = 1.0) -> None:
    """`continue`, returning when the target stops; it stops by the deadline (+ grace) at the latest.
    grace=0 when no breakpoint checks the deadline (then the SIGINT is what ends the run)."""
    remaining = max(0.0, deadline.end - time.monotonic())
    timer = threading.Timer(remaining + grace, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    try:
        gdb.execute("continue", to_string=quiet)
    except gdb.error:
        pass  # "Quit" or an interrupted continue: the target is stopped either way
    finally:
        timer.cancel()


class _Landing(gdb.Breakpoint):
    """Where a single step may land. GDB prints no frame (neither on the CLI nor as an MI console
    record) for a stop at a silent breakpoint, which a plain `stepi` always does."""

    def __init__(self, address: int):
        super().__init__(f"*{address:#x}", internal=True)
        self.silent = True


def quiet_stepi(landings) -> None:
    """One `stepi` of the selected thread without GDB's source-line chatter: silent breakpoints on
    every address it may land on (`landings`: the next instruction, a branch target, ELR for an
    ERET, a vector for an exception). Landing elsewhere still works, GDB then prints its line."""
    bps = []
    try:
        for address in sorted(set(a & MASK64 for a in landings if a is not None)):
            bps.append(_Landing(address))
        gdb.execute("stepi", to_string=True)
    finally:
        for bp in bps:
            if bp.is_valid():
                bp.delete()

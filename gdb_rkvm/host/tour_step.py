"""One step of `rkvm tour`: a record the tour runs and prints (host/tour.py), shared by its parts."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """`commands` run in order; besides GDB commands: `@type LINE` (typed into the guest's shell once it is
    up), `@send LINE` (typed now; its output is what `@console` shows), `@you` (the learner's line),
    `@console` (let the guest run a moment and show what it printed)."""

    title: str
    text: str
    commands: tuple
    look: str                      # what to look at in the output, named
    your_turn: bool = False        # the learner types a guest command (an HVC) here

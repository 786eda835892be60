"""Regenerate docs/commands/*.md: each command's help and its real output on the lab.

Usage: python3 docs/capture.py [PAGE ...]   (boots the lab, about a minute; `make docs`)
With PAGE names (e.g. trace-el psci), only those pages are written and the index is left alone
(`tour` among them rewrites docs/tour.md; without names it is always rewritten).
"""

import re
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gdb_rkvm.qemu import session  # noqa: E402
from gdb_rkvm.host.mi import GdbMi  # noqa: E402

DOCS = Path(__file__).resolve().parent / "commands"

# (page, help topic, commands run in order on one booted lab; "@ping" types a ping meanwhile)
RESET_PAGES = [  # each in a session of its own, from reset: the boot's own EL transitions and calls
    ("trace-el", "rkvm trace-el", ["rkvm trace-el --class hvc,smc --count 7 --explain",
                                   "rkvm trace-el --el2-only --count 6",
                                   "rkvm trace-el --cpu 1 --class irq,svc,dabt --count 3"]),
    ("smc-catch", "rkvm smc catch", ["rkvm smc catch", "continue", "rkvm smc catch off"]),
    ("psci", "rkvm psci", ["rkvm psci --watch", "rkvm run-to installed-all", "rkvm psci"]),
]
BOOT_PAGES = [  # captured on the first attach, from reset
    ("status", "rkvm status", ["rkvm status"]),
    ("esr", "rkvm esr", ["rkvm esr", "rkvm esr 0x5a000042 --explain", "rkvm esr 0x96000045"]),
    ("run-to", "rkvm run-to", ["rkvm run-to boot-hyp-stub", "rkvm run-to boot-eret", "rkvm run-to cpu-start",
                               "rkvm run-to installed-all"]),
]
PAGES = [
    ("modules", "rkvm modules", ["rkvm modules"]),
    ("cpus", "rkvm cpus", ["rkvm cpus", "rkvm cpus --explain"]),
    ("el", "rkvm el", ["rkvm el --cpu 0", "rkvm el --cpu 0 --explain"]),
    ("sysreg", "rkvm sysreg", ["rkvm sysreg HCR_EL2", "rkvm sysreg SCTLR_EL2", "rkvm sysreg VBAR_EL2",
                               "rkvm sysreg TCR_EL1 --explain", "rkvm sysreg VBAR_EL"]),
    ("vectors", "rkvm vectors", ["rkvm vectors el2 --count 2", "rkvm vectors el1 --count 1"]),
    ("functions", "function rkvm_el", ['p $rkvm_el()', 'p/x $rkvm_sysreg("SCTLR_EL1")']),
    ("walk", "rkvm walk", ["rkvm walk rkvm_debug", "rkvm walk rkvm_debug --explain", "rkvm walk 0xffff7000dead0000",
                           "rkvm walk start_kernel", "rkvm walk --regime el2 rkvm_debug"]),
    ("v2p", "rkvm v2p", ["rkvm v2p rkvm_init --explain", "rkvm v2p rkvm_debug.stub_va"]),
    ("contig", "rkvm contig", ["rkvm contig rkvm_debug.vmalloc_buf 0x8000", "rkvm contig rkvm_debug.pages_buf 0x4000"]),
    ("vmmap", "rkvm vmmap", ["rkvm vmmap"]),
    ("p2v", "rkvm p2v", ["rkvm p2v rkvm_debug.stub_pa"]),
    ("stub", "rkvm stub", ["rkvm stub", "info symbol $VBAR_EL2 + 0x400", "rkvm stub --elf stub/build/el2_stub.elf"]),
    ("lint-el2", "rkvm lint-el2", ["rkvm lint-el2 stub/build/el2_stub.o", "rkvm lint-el2 stub/build/el2_stub_jt.o"]),
    ("kaslr", "rkvm kaslr", ["rkvm kaslr"]),
    ("snapshot", "rkvm snapshot", ["rkvm snapshot"]),
    ("hvc-catch", "rkvm hvc catch", ["rkvm hvc catch --imm 0x4b", "@ping continue", "rkvm hvc catch off"]),
    ("step-el2", "rkvm step-el2", ["rkvm step-el2 --explain"]),
    ("hvc-trace", "rkvm hvc trace", ["@burst rkvm hvc trace --count 5", "@burst rkvm hvc trace --args --count 3"]),
]
# then rkvm.ko's guest is run and stopped at its first stage-2 exit (the UART): the guest world. A page
# named twice (cpus, el, walk, vmmap) gets this part appended under its own heading.
GUEST_PAGES = [
    ("exit-catch", "rkvm exit catch", ["rkvm exit catch --reason dabt", "@guest continue", "rkvm exit catch status",
                                       "rkvm exit catch off"]),
    ("fault", "rkvm fault", ["rkvm fault", "rkvm fault --explain"]),
    ("cpus", "rkvm cpus", ["rkvm cpus"]),
    ("el", "rkvm el", ["rkvm el"]),
    ("vcpu", "rkvm vcpu", ["rkvm vcpu"]),
    ("walk", "rkvm walk", ["rkvm walk --stage 2 0x80000000", "rkvm walk --guest 0x49000000",
                           "rkvm walk --guest $ELR_EL2 --explain"]),
    ("vmmap", "rkvm vmmap", ["rkvm vmmap --guest", "rkvm vmmap --stage 2"]),
]
GUEST_HEADING = "## In the guest (stopped at its first stage-2 exit, the UART store)"


def _type_quietly(console, text):
    try:
        console.send(text)
    except OSError:
        pass


def run(mi, sess, cmd, console):
    if cmd.startswith("@"):
        what, cmd = cmd.split(" ", 1)
        line = {"@ping": "echo ping 0x77 > /sys/kernel/debug/rkvm/hvc",
                "@burst": "echo burst 5 > /sys/kernel/debug/rkvm/hvc",
                "@guest": 'echo "run 10000" > /sys/kernel/debug/rkvm/guest'}[what]
        typer = threading.Timer(1.0, _type_quietly, args=(console, line + "\n"))
        typer.start()
    else:
        typer = None
    res = mi.console(cmd, timeout=120)
    if typer is not None:
        typer.cancel()   # the command may be done before the line was typed (the log needs no HVC)
        typer.join()
    text = res.output.rstrip()
    if not res.ok:
        text += ("\n" if text else "") + res.error
    return re.sub(r"\n*\[Switching to Thread[^\n]*\]", "", text)


ONLY: set = set()


def main() -> int:
    ONLY.update(sys.argv[1:])
    DOCS.mkdir(exist_ok=True)
    index = ["# Command reference", "", "Each page: the command's help, then its real output on the lab "
             "(regenerated by `python3 docs/capture.py`).", ""]
    for page in RESET_PAGES:
        if ONLY and page[0] not in ONLY:
            continue
        sess = session.start("lab")
        try:
            with GdbMi() as mi:
                capture(mi, sess, None, [page], index)
        finally:
            session.stop(only=sess)
    sess = session.start("lab")
    try:
        with GdbMi() as mi:
            # from reset to rkvm.ko's install, then let the guest reach its shell
            capture(mi, sess, None, BOOT_PAGES, index)
            mi.console("detach")
            session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
        console = session.SerialConsole(sess)
        with GdbMi() as mi:
            capture(mi, sess, console, PAGES, index)
            capture(mi, sess, console, GUEST_PAGES, index)
            if not ONLY:
                (DOCS / "README.md").write_text("\n".join(index) + "\n")
        console.close()
    finally:
        session.stop(only=sess)
    if not ONLY or "tour" in ONLY:
        capture_tour()
    return 0


def capture_tour() -> None:
    """docs/tour.md: `rkvm tour --all` on the lab, as printed."""
    import io

    from gdb_rkvm.host.tour import run_tour
    buf = io.StringIO()
    run_tour(all_steps=True, out=buf)
    text = re.sub(r"\n*\[Switching to Thread[^\n]*\]", "", buf.getvalue())
    (DOCS.parent / "tour.md").write_text(
        "# `rkvm tour`, every step\n\nWhat `rkvm tour --all` printed on the lab (regenerated by "
        "`python3 docs/capture.py`). Run `rkvm tour` on a terminal to go one step at a time: Enter goes on, "
        "q quits, and the last step types the guest command you give it.\n\n```\n" + text.strip() + "\n```\n")


BODIES: dict = {}   # page -> its lines so far (a page captured in the host and again in the guest)


def capture(mi, sess, console, pages, index) -> None:
    """Write one page per (page, topic, commands) with the help text and each command's output."""
    for page, topic, cmds in pages:
        if ONLY and page not in ONLY:
            if page in ("run-to", "exit-catch"):   # they move the guest to where the other pages expect it
                for cmd in cmds:
                    run(mi, sess, cmd, console)
            continue
        if page in BODIES:
            body = BODIES[page] + [GUEST_HEADING, ""]
        else:
            help_text = mi.console(f"help {topic}").output.strip()
            body = [f"# `{topic}`", "", "```", help_text, "```", "", "## On the lab", ""]
            index.append(f"- [`{topic}`]({page}.md): {help_text.splitlines()[0] if help_text else ''}")
        for cmd in cmds:
            shown = cmd.split(" ", 1)[1] if cmd.startswith("@") else cmd
            body += ["```", f"(gdb) {shown}", run(mi, sess, cmd, console), "```", ""]
        BODIES[page] = body
        (DOCS / f"{page}.md").write_text("\n".join(body))


if __name__ == "__main__":
    sys.exit(main())

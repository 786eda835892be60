import gdb

from gdb_rkvm.arch import exits, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.live.trap import Trap, TrapFilter
from gdb_rkvm.live.trap_watch import TrapCatch
from gdb_rkvm.commands.base import CONNECTED, STOPPED, RkvmCommand, last_caught, only_when

# Every guest exit enters one of the four Lower EL, AArch64 slots: sync (HVC, aborts, WFx, sysregs...),
# IRQ, FIQ, SError (HCR_EL2.IMO/FMO/AMO route the physical ones to EL2 while the guest runs).
EXIT_SLOTS = (vectors.LOWER_A64_SYNC, vectors.LOWER_A64_SYNC + 0x80, vectors.LOWER_A64_SYNC + 0x100,
              vectors.LOWER_A64_SYNC + 0x180)
ABORTS = (exits.ExitReason.DABT, exits.ExitReason.IABT)


def parse_reasons(text: str | None) -> frozenset[str] | None:
    """--reason dabt,wfx -> {"dabt", "wfx"}; None (every exit) without one; RkvmError naming the choices."""
    if not text:
        return None
    try:
        return frozenset(exits.parse_reason(r).value for r in text.split(",") if r.strip())
    except ValueError as e:
        raise RkvmError(str(e)) from None


def format_exit(tr: Trap) -> str:
    """A guest exit in one line: CPU, reason, the syndrome decoded, the guest's PC, and for an abort
    FAR_EL2, HPFAR_EL2 and the IPA they give."""
    ex = tr.exit
    if ex is None:
        return f"rkvm: CPU {tr.cpu}: not a guest exit (HCR_EL2.VM = 0): {tr.esr_summary}"
    esr = f" (ESR_EL2 {ex.esr:#x})" if ex.esr is not None else ""
    line = f"rkvm: CPU {tr.cpu}: guest exit {ex.reason.value}: {ex.detail}{esr}"
    if tr.elr is not None:
        pc = tr.caller if ex.reason is exits.ExitReason.HVC else tr.elr
        line += f", guest PC {pc:#x}" + (f" (ELR_EL2 {tr.elr:#x})" if pc != tr.elr else " (ELR_EL2)")
    if ex.reason in ABORTS and tr.far is not None and tr.hpfar is not None:
        line += f", FAR_EL2 {tr.far:#x}, HPFAR_EL2 {tr.hpfar:#x} -> IPA {tr.ipa:#x}"
    return line


def _printer(tr: Trap) -> None:
    gdb.write(format_exit(tr) + "\n")


@only_when(STOPPED)
class RkvmExitCatch(RkvmCommand):
    """Stop when a guest exit reaches EL2 (a guest at EL1 under stage 2 trapping to the stub).

Usage: rkvm exit catch [--reason R[,R...]] [--cpu N] [--json]
       rkvm exit catch off | status
Breakpoints on VBAR_EL2 + 0x400/0x480/0x500/0x580 (Lower EL using AArch64: sync, IRQ, FIQ, SError) of
every CPU; an entry is a guest exit when HCR_EL2.VM = 1 at that moment, the same test the stub's own
vector makes (stub/el2_world_switch.S): the host's HVCs (HCR_EL2.VM = 0) never stop it, and
`rkvm hvc catch` no longer stops on guest exits. --reason: hvc, smc, dabt, iabt, wfx, sysreg, fpsimd,
irq, fiq, serror, debug, other (comma-separated; default: every exit). On a stop it prints one line:
the reason, ESR_EL2 decoded, the guest's PC (ELR_EL2) and for an abort FAR_EL2, HPFAR_EL2 and the IPA;
`rkvm fault` then explains a stage-2 abort, `rkvm step-el2` steps the exit back to the host.
Example:
  (gdb) rkvm exit catch --reason dabt
  rkvm: catching guest exits (exit reason dabt) at 0x4099c400, 0x4099c480, 0x4099c500, 0x4099c580
  (gdb) continue          (and in the lab's shell: echo "run 100" > /sys/kernel/debug/rkvm/guest)
  rkvm: CPU 0: guest exit dabt: Data Abort ... (ESR_EL2 0x93c08007), guest PC 0x80000040 (ELR_EL2),
    FAR_EL2 0x49000000, HPFAR_EL2 0x90000 -> IPA 0x9000000   (one line on screen)"""

    name = "exit catch"

    def add_arguments(self, p):
        p.add_argument("action", nargs="?", choices=("off", "status"))
        p.add_argument("--off", action="store_true", help="remove the catch")
        p.add_argument("--status", action="store_true", help="what is armed, and the last exit caught")
        p.add_argument("--reason", metavar="R,...", help=f"one or more of {', '.join(exits.REASON_NAMES)}")
        self.add_cpu_argument(p)

    def run(self, args):
        if args.status or args.action == "status":
            return _status()
        off = args.off or args.action == "off"
        reasons = None if off else parse_reasons(args.reason)
        if args.cpu is not None:
            t.thread_for_cpu(args.cpu)  # "no CPU 9 (CPUs: 0, 1)"
        old = STATE.exit_catch
        if old is not None:
            old.disarm()
            STATE.exit_catch = None
        if off:
            return {"armed": False, "addresses": []}
        flt = TrapFilter(cpu=args.cpu, classes=None, guest=True, reasons=reasons)
        catch = TrapCatch(flt, _printer, slots=EXIT_SLOTS, name="exit catch")
        try:
            addresses = catch.arm()
        except BaseException:
            catch.disarm()
            raise
        STATE.exit_catch = catch
        return {"armed": True, "filter": flt.describe(), "addresses": addresses}

    def format(self, r, args):
        if "last" in r:
            return format_status(r)
        if not r["armed"]:
            return "rkvm: exit catch off"
        where = ", ".join(f"{a:#x}" for a in r["addresses"]) or "nowhere yet (VBAR_EL2 not set: re-armed at each stop)"
        return f"rkvm: catching guest exits ({r['filter']}) at {where}"


def _status() -> dict:
    catch = STATE.exit_catch
    if catch is None:
        return {"armed": False, "filter": None, "addresses": [], "last": None}
    return {"armed": True, "filter": catch.filter.describe(), "addresses": catch.watch.addresses("entry"),
            "last": catch.last}


def format_status(r: dict) -> str:
    """`rkvm exit catch status`: armed or not, and the last exit it stopped on."""
    if not r["armed"]:
        return "rkvm: no exit catch armed ('rkvm exit catch [--reason R]' arms one)"
    lines = [f"rkvm: exit catch armed ({r['filter']}) at {len(r['addresses'])} vector slots"]
    lines.append(f"  last: {format_exit(r['last'])[len('rkvm: '):]}" if r["last"] else "  nothing caught yet")
    return "\n".join(lines)


@only_when(CONNECTED)
class RkvmExitLast(RkvmCommand):
    """The last guest exit that `rkvm exit catch` stopped on.

Usage: rkvm exit last [--json]"""

    name = "exit last"

    def run(self, args):
        return last_caught(STATE.exit_catch, "no guest exit caught yet (arm a catch with 'rkvm exit catch')")

    def format(self, tr, args):
        return format_exit(tr)

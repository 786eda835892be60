from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.commands.base import KERNEL_SYMBOLS, STOPPED, RkvmCommand, only_when


@only_when(STOPPED, KERNEL_SYMBOLS)
class RkvmPsci(RkvmCommand):
    """Which conduit the kernel uses for PSCI (HVC or SMC), where such a call lands on each CPU, and the
SMCCC calls recorded while `--watch` is on.

Usage: rkvm psci [--watch | --watch off] [--json] [--explain]
The conduit is the kernel's own choice from the device tree (`psci_conduit`). With HVC, a PSCI call
(CPU_ON, CPU_OFF, SYSTEM_OFF...) is an exception to EL2: whatever VBAR_EL2 holds must answer it, and
neither the kernel's hyp-stub nor the rkvm stub does. --watch puts silent breakpoints on the HVC and
SMC of the kernel's SMCCC entry points (__arm_smccc_hvc/smc, which every PSCI call goes through) and
records each SMCCC call (x0..x3 decoded, VBAR_EL2 then, the x0 it returned); `rkvm triage` arms it
from reset.
Example:
  (gdb) rkvm psci
  conduit   smc (psci_conduit)
  CPU 0     EL3: the firmware (QEMU itself on a board without EL3)
  CPU 1     EL3: the firmware (QEMU itself on a board without EL3)"""

    name = "psci"
    explains = True

    def add_arguments(self, p):
        p.add_argument("--watch", nargs="?", const="on", choices=("on", "off"))

    def run(self, args):
        from gdb_rkvm.live import psci
        armed = None
        if args.watch == "on":
            armed = psci.arm_watch()
        elif args.watch == "off":
            psci.disarm_watch()
        r = psci.facts()
        r["armed_sites"] = armed
        return r

    def format(self, r, args):
        lines = [f"conduit   {r['conduit'] or 'unknown'} ({escape(r['how'])})"]
        for cpu, c in r["cpus"].items():
            if not c["lands"]:
                continue
            verdict = {False: "  does NOT handle PSCI", True: "", None: ""}[c["handles_psci"]]
            lines.append(f"CPU {cpu:<5} {c['lands']}{verdict}" + (f": {c['why']}" if c["why"] else ""))
        if args.explain and r["conduit"] == "hvc":
            lines.append("    with the HVC conduit every PSCI call is an exception to EL2: the vectors in VBAR_EL2 "
                         "must implement PSCI (or pass it on), or CPU_ON, CPU_OFF and SYSTEM_OFF fail.")
        if r["armed_sites"]:
            lines.append(f"watching  the kernel's SMCCC calls ({r['armed_sites']} HVC/SMC instructions)")
        for c in r["calls"]:
            res = f" -> {escape(c['result_text'])}" if c["result"] is not None else " (no return seen)"
            where = f" to VBAR_EL2 {c['vbar_el2']:#x} ({c['vbar_kind']})" if c["vbar_el2"] is not None else ""
            sym = f" <{escape(c['site_symbol'])}>" if c["site_symbol"] else ""
            lines.append(f"call      CPU {c['cpu']} {c['conduit'].upper()} at {c['site']:#x}{sym}{where}: "
                         f"{escape(c['call'])}{res}")
        if r["calls_dropped"]:
            lines.append(f"          ({r['calls_dropped']} more calls not recorded)")
        return "\n".join(lines)

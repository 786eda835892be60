"""GDB commands under the `rkvm` prefix. Each module defines one command class; register_all() adds them."""


def register_all():
    """Create the `rkvm` prefix, every subcommand and the convenience functions."""
    from gdb_rkvm.commands import (cpus, el, esr, functions, hvc, kaslr_cmd, lint_el2, modules, prefix, psci_cmd,
                                   run_to, settings, snapshot, status, step_el2, stub, sysreg, trace_el, v2p,
                                   vcpu, vectors, vmmap, walk)
    from gdb_rkvm.commands import exit_catch, fault

    settings.register()
    prefix.RkvmPrefix()
    prefix.RkvmHvcPrefix()
    prefix.RkvmSmcPrefix()
    prefix.RkvmExitPrefix()
    for cls in (status.RkvmStatus, run_to.RkvmRunTo, modules.RkvmModules, cpus.RkvmCpus, el.RkvmEl,
                sysreg.RkvmSysreg, esr.RkvmEsr, vectors.RkvmVectors, walk.RkvmWalk, v2p.RkvmV2p,
                v2p.RkvmContig, vmmap.RkvmVmmap, vmmap.RkvmP2v, stub.RkvmStub, hvc.RkvmHvcCatch,
                hvc.RkvmHvcLast, hvc.RkvmHvcTrace, step_el2.RkvmStepEl2, trace_el.RkvmTraceEl,
                snapshot.RkvmSnapshot, kaslr_cmd.RkvmKaslr, lint_el2.RkvmLintEl2, hvc.RkvmSmcCatch,
                psci_cmd.RkvmPsci, vcpu.RkvmVcpu,
                exit_catch.RkvmExitCatch, exit_catch.RkvmExitLast, fault.RkvmFault,
                functions.RkvmElFunction, functions.RkvmSysregFunction, functions.RkvmWorldFunction):
        cls()

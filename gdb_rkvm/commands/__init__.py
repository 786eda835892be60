"""GDB commands under the `rkvm` prefix. Each module defines one command class; register_all() adds them."""


def register_all():
    """Create the `rkvm` prefix, every subcommand and the convenience functions."""
    from . import cpus, el, esr, functions, modules, prefix, run_to, status, sysreg, v2p, vectors, vmmap, walk

    prefix.RkvmPrefix()
    for cls in (status.RkvmStatus, run_to.RkvmRunTo, modules.RkvmModules, cpus.RkvmCpus, el.RkvmEl,
                sysreg.RkvmSysreg, esr.RkvmEsr, vectors.RkvmVectors, walk.RkvmWalk, v2p.RkvmV2p,
                v2p.RkvmContig, vmmap.RkvmVmmap, vmmap.RkvmP2v,
                functions.RkvmElFunction, functions.RkvmSysregFunction):
        cls()

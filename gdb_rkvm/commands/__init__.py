"""GDB commands under the `rkvm` prefix. Each module defines one command class; register_all() adds them."""


def register_all():
    """Create the `rkvm` prefix, every subcommand and the convenience functions."""
    from . import cpus, el, esr, functions, modules, prefix, run_to, status, sysreg, vectors

    prefix.RkvmPrefix()
    for cls in (status.RkvmStatus, run_to.RkvmRunTo, modules.RkvmModules, cpus.RkvmCpus, el.RkvmEl,
                sysreg.RkvmSysreg, esr.RkvmEsr, vectors.RkvmVectors,
                functions.RkvmElFunction, functions.RkvmSysregFunction):
        cls()

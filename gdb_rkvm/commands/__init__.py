"""GDB commands under the `rkvm` prefix. Each module defines one command class; register_all() adds them."""


def register_all():
    """Create the `rkvm` prefix and every subcommand (idempotent per GDB process)."""
    from . import modules, prefix, run_to, status

    prefix.RkvmPrefix()
    for cls in (status.RkvmStatus, run_to.RkvmRunTo, modules.RkvmModules):
        cls()

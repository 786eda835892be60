"""GDB commands under the `rkvm` prefix. Each module defines one command class; register_all() adds them."""


def register_all():
    """Create the `rkvm` prefix and every subcommand (idempotent per GDB process)."""
    from . import prefix, status, run_to, modules  # noqa: F401  (import registers nothing by itself)

    prefix.RkvmPrefix()
    for cls in (status.RkvmStatus, run_to.RkvmRunTo, modules.RkvmModules):
        cls()

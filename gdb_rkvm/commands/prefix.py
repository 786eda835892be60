import gdb


class RkvmPrefix(gdb.Command):
    """gdb-rkvm: EL1/EL2 state, HVC traps and page walks on an AArch64 QEMU guest.

Every subcommand has its own help ('help rkvm status'); most take --json.
Start a lab session first: 'rkvm up' in a shell, then 'gdb -x rkvm.py' (or just 'rkvm gdb')."""

    def __init__(self):
        super().__init__("rkvm", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, prefix=True)


class RkvmHvcPrefix(gdb.Command):
    """HVC traps into EL2: `rkvm hvc catch` stops on them, `rkvm hvc trace` logs them."""

    def __init__(self):
        super().__init__("rkvm hvc", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, prefix=True)


class RkvmSmcPrefix(gdb.Command):
    """SMC calls (PSCI on this lab): `rkvm smc catch` stops on them. `rkvm hvc trace --smc` logs them."""

    def __init__(self):
        super().__init__("rkvm smc", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, prefix=True)


class RkvmExitPrefix(gdb.Command):
    """Guest exits (a guest at EL1 under stage 2 coming back to EL2): `rkvm exit catch` stops on them."""

    def __init__(self):
        super().__init__("rkvm exit", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, prefix=True)

"""The one exception type every layer raises for a user's mistake or a target's state.

Commands and the CLI print it as a single line; anything else is a bug and keeps its traceback.
"""


class RkvmError(Exception):
    """A clear, one-line reason why something cannot be done."""

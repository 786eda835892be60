"""Tab completion of a command's arguments, worked out from its argparse parser.

Pure (no gdb import), so it is unit-tested on parsers alone. A command's arguments say what they
complete with: `choices` complete by themselves; other arguments carry a `completer` attribute
(set with `completes(action, ...)`): a callable returning candidate words, or one of the
delegations below, which the GDB side maps to GDB's own completers.
"""

import argparse
from collections.abc import Callable, Iterable

EXPRESSION = "expression"   # an address: GDB completes symbol names
FILENAME = "filename"


def completes(action: argparse.Action, completer: Callable[[], Iterable[str]] | str) -> argparse.Action:
    """Mark a parser argument as completing with `completer`; returns the action."""
    action.completer = completer
    return action


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


def _candidates(action: argparse.Action):
    if action.choices is not None:
        return [str(c) for c in action.choices]
    completer = getattr(action, "completer", None)
    if completer is None:
        return EXPRESSION if not action.option_strings else []
    if isinstance(completer, str):
        return completer
    return list(completer())


def complete_arguments(parser: argparse.ArgumentParser, text: str):
    """Completions of the last (partial) word of `text`, an argument line typed so far.

    Returns a list of whole words that start with that partial word, or EXPRESSION / FILENAME
    when GDB's own completer should take over."""
    tokens = text.split()
    partial = "" if not tokens or text[-1:].isspace() else tokens.pop()
    options = _options(parser)
    if partial.startswith("-"):
        return sorted(o for o in options if o.startswith(partial))
    # Which argument is this word the value of? Walk what was typed before it.
    positional_index = 0
    expecting: argparse.Action | None = None
    for tok in tokens:
        if expecting is not None:
            expecting = None
            continue
        if tok in options:
            if _takes_value(options[tok]):
                expecting = options[tok]
            continue
        positional_index += 1
    if expecting is None:
        positionals = _positionals(parser)
        if not positionals:
            return sorted(o for o in options if o.startswith(partial)) if not partial else []
        # A positional with nargs '+'/'*' keeps taking words.
        index = min(positional_index, len(positionals) - 1)
        target = positionals[index]
        if positional_index >= len(positionals) and target.nargs not in ("+", "*"):
            return []
        expecting = target
    found = _candidates(expecting)
    if isinstance(found, str):
        return found
    upper = partial.upper()
    return sorted({c for c in found if c.upper().startswith(upper)})


def completions_for_word(found: list[str], text: str, word: str | None) -> list[str]:
    """GDB completes `word`, the tail of the last token after its word-break characters (such as
    '-'): cut each whole-word completion to the part that replaces `word`."""
    tokens = text.split()
    partial = "" if not tokens or text[-1:].isspace() else tokens[-1]
    if word is None or len(word) > len(partial):
        return found
    cut = len(partial) - len(word)
    return [c[cut:] for c in found]

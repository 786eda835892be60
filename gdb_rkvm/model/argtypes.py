"""argparse types shared by the `rkvm` shell command and the GDB commands."""

import argparse
import math


def seconds(text: str) -> float:
    """A duration in seconds: a finite number above zero (`nan`, `inf` and negatives never expire or
    make no sense, so they are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': expected a finite number of seconds above 0")
    return value


def tcp_port(text: str) -> int:
    """A TCP port for --tcp: 0 (a free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}': expected a port from 1 to 65535 (0: a free one)")
    return value

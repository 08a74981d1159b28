"""What every experiment script shares: flag types, the device line, and one-sentence errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from jaxgan.errors import UserError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def writable_dir(path: str) -> str:
    """Makes ``path`` (and parents) or raises UserError saying why it cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create directory {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"directory {path} is not writable")
    return path


def describe_devices() -> str:
    """One line naming the JAX backend and its devices."""
    import jax

    devices = jax.devices()
    return f"JAX {jax.__version__} on {jax.default_backend()}: {len(devices)} x {devices[0].device_kind}"


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Runs ``main``; bad input ends in one sentence on stderr and exit 2 (``--debug`` re-raises)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # Orbax and absl log every save at INFO/WARNING level; keep the terminal for our own lines.
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        main(argv)
    except UserError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

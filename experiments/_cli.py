"""What every experiment script shares: flag types, the device line, and one-sentence errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from jaxgan.errors import UserError


def int_at_least(minimum: int):
    """argparse type factory: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def float_between(low: float, high: float, *, low_inclusive: bool = False):
    """argparse type factory: a number in (low, high), or [low, high) with ``low_inclusive``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above_low = value >= low if low_inclusive else value > low
        if not (above_low and value < high):
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"{value} is not in {bracket}{low}, {high})")
        return value

    return parse


def add_image_flags(parser: argparse.ArgumentParser, split_help: str) -> None:
    """The image-source flags every image experiment shares: --dataset, --split, --data-dir."""
    parser.add_argument("--dataset", default="auto",
                        help="image source: mnist (tfds), idx:DIR (raw IDX files), digits (sklearn, "
                             "offline) or auto (mnist if prepared, else digits) (default: %(default)s)")
    parser.add_argument("--split", default="train", choices=("train", "test"),
                        help=f"{split_help} (default: %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="tfds data directory for mnist/auto (default: tfds's own)")


def load_image_flags(args: argparse.Namespace):
    """Loads the images the image flags name and prints what was loaded; returns the ImageSet."""
    from jaxgan.data.images import load_images

    image_set = load_images(args.dataset, split=args.split, data_dir=args.data_dir)
    print(f"images: {image_set.source}")
    return image_set


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

"""The installed commands (``jaxgan-train-gan`` ...): each runs its script's ``main`` as
``python -m experiments.NAME`` does, through ``_cli.run``, with the same flags and exit statuses."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from experiments import _cli

SCRIPTS = ("palindrome", "train_gan", "train_classifier", "sample", "interpolate", "reproduce",
           "prepare_mnist")


def _command(name: str) -> Callable[[], None]:
    """The entry point of ``jaxgan-NAME``: imports ``experiments.NAME`` and runs its ``main``."""

    def command() -> None:
        _cli.run(importlib.import_module(f"experiments.{name}").main)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = f"Runs experiments.{name} (the command jaxgan-{name.replace('_', '-')})."
    return command


palindrome = _command("palindrome")
train_gan = _command("train_gan")
train_classifier = _command("train_classifier")
sample = _command("sample")
interpolate = _command("interpolate")
reproduce = _command("reproduce")
prepare_mnist = _command("prepare_mnist")

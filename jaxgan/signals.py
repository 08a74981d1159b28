"""SIGINT and SIGTERM deferred to a safe point: training loops stop at the end of a chunk, with a checkpoint.

``deferred_signals()`` swaps in a handler that only records the signal; the loop looks at the
recorded list after each epoch (GAN) or chunk of epochs (palindrome sweep), saves a checkpoint
and raises ``Interrupted``, which the scripts turn into exit status 128 + signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run saved a checkpoint where it stopped and ended cleanly."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Records SIGINT/SIGTERM in the yielded list instead of dying, so a training loop can stop cleanly.

    A second signal gets the previous handler (Ctrl-C twice still interrupts at once). Only
    the main thread may set handlers; elsewhere the list simply stays empty.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in HANDLED}

    def handler(signum, frame):
        """Notes the signal; the next one falls through to what was there before."""
        received.append(signum)
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    return signal.Signals(signum).name

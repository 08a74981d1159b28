"""SIGINT and SIGTERM deferred to a safe point: training loops stop at the end of a chunk, with a checkpoint.

``deferred_signals()`` swaps in a handler that only records the signal; the run loop asks
``agreed_signal(received)`` after each epoch (GAN, classifier) or chunk of epochs (palindrome
sweep), saves a checkpoint and raises ``Interrupted``, which the scripts turn into exit status
128 + signal number. In a run of several processes a signal may reach one process only, or
reach them at different moments; ``agreed_signal`` is a collective that makes every process see
the same answer at the same point, so they all save the same step and stop together.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils

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
    the main thread may set handlers; elsewhere the list simply stays empty. The previous
    handlers are back in place when the block ends.
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


def agreed_signal(received: list[int]) -> int | None:
    """The signal every process of the run stops for, or None to go on.

    With one process, the first signal it received. With several, a collective (every process
    must call it at the same point of the loop): the first signal of the lowest-numbered process
    that received one, so all processes decide alike even when only one of them was signalled.
    """
    local = received[0] if received else 0
    if jax.process_count() == 1:
        return local or None
    gathered = np.asarray(multihost_utils.process_allgather(np.asarray(local, np.int32))).ravel()
    chosen = [int(s) for s in gathered if s]
    return chosen[0] if chosen else None


def name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    return signal.Signals(signum).name

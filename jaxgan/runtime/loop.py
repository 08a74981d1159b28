"""The one host-side run loop under every trainer (palindrome sweeps, the GAN, the classifier).

A trainer claims its run folder (``jaxgan.runtime.workdir.claim``), opens its checkpoints with
``open_run`` and then ends every chunk (an epoch or several, one jitted program each) with
``Run.end_chunk``, which does the same four things in one fixed order:

1. **check finite**: a NaN or infinity stops the run with one sentence, *before* anything of that
   chunk is saved, so the newest checkpoint stays the last good one (the finite steps before it
   are still logged);
2. **log**: the trainer's own ``log`` (metrics.jsonl, TensorBoard, grids, scores, progress);
3. **save**: an asynchronous Orbax save that cannot be skipped silently (when it is due, or a
   signal arrived);
4. **stop on a signal**: SIGINT/SIGTERM, agreed by every process of the run: wait for the save and
   raise ``Interrupted``.

``open_run`` owns everything around that: the Orbax manager, deferred signals, resuming from the
newest good checkpoint (damaged newer ones set aside with a warning), waiting for the last save and
proving it is on disk before the run counts as finished, and deciding which process writes
result files. Every trainer reports to its caller through one event type, ``Progress``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import numpy as np
import orbax.checkpoint as ocp

from jaxgan.errors import UserError
from jaxgan.runtime import checkpoint, parallel, signals
from jaxgan.runtime.signals import Interrupted

__all__ = ["Interrupted", "NonFinite", "Progress", "Run", "first_non_finite", "open_run"]


class NonFinite(UserError):
    """A metric (or a watched parameter) became NaN or infinite; the run stopped without saving it."""


def first_non_finite(values: Mapping[str, np.ndarray]) -> tuple[tuple[int, ...], str, float] | None:
    """(index, name, value) of the earliest non-finite entry, earliest along the last axis (time).

    ``values`` maps names to arrays [..., time] (a GAN epoch: [steps]; a sweep chunk: [runs, epochs]);
    the index is the entry's full index, and of two at the same time the first name wins. None when
    every value is finite.
    """
    bad = None
    for name, array in values.items():
        array = np.asarray(array)
        where = np.argwhere(~np.isfinite(array))
        if where.size:
            first = tuple(int(i) for i in where[np.argmin(where[:, -1])])
            if bad is None or first[-1] < bad[0][-1]:
                bad = (first, name, float(array[first]))
    return bad


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a trainer tells its caller (a progress bar, a report): one event type for every trainer.

    ``event`` is "start" (the run opened, ``done`` is where it resumed), "chunk" (``done`` of
    ``total`` units finished, ``metrics`` their host means), "scores" (``metrics`` holds the scores
    of the checkpoint at ``done``) or "message" (a line to show, in ``text``). ``label`` names the
    run ("gan", "lstm/scalar", "classifier"); ``unit`` is what ``done`` counts ("epoch").
    """

    event: str
    label: str
    done: int
    total: int
    unit: str = "epoch"
    resumed: bool = False
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    text: str = ""


ProgressFn = Callable[[Progress], None]


def ignore(event: Progress) -> None:
    """A progress callback that shows nothing."""


@dataclasses.dataclass
class Run:
    """One open run: its checkpoints, where it resumed from, and the signals it received.

    ``state``, ``saved_record`` and ``start`` are the restored checkpoint's state, record and step
    (None, None, 0 for a fresh run); ``writer`` says whether this process writes result files.
    Without a ``directory`` nothing is saved and nothing is resumed.
    """

    directory: str | None
    label: str
    record: dict
    manager: ocp.CheckpointManager | None
    received: list[int]
    state: Any = None
    saved_record: dict | None = None
    start: int = 0
    writer: bool = True
    unit: str = "step"  # what a checkpoint's number counts, in messages: "step" or "epoch"
    _pending: int | None = None

    @property
    def resumed(self) -> bool:
        """Whether the run continues from a checkpoint."""
        return self.state is not None

    def latest_step(self) -> int | None:
        """The newest checkpoint's step, or None."""
        return None if self.manager is None else checkpoint.latest_step(self.manager)

    def save(self, step: int, state: Any) -> None:
        """Starts an asynchronous save of ``state`` at ``step``, with the record; never skipped silently."""
        if self.manager is None:
            return
        self.confirm()  # Orbax waits for the previous save here anyway; one that failed stops the run now
        checkpoint.save(self.manager, step, state, self.record)
        self._pending = step

    def confirm(self) -> None:
        """Waits for the pending save and checks that it is on disk (``checkpoint.SaveFailed`` if not)."""
        if self.manager is not None and self._pending is not None:
            checkpoint.confirm_saved(self.manager, self._pending, unit=self.unit)
            self._pending = None

    def stop_signal(self) -> int | None:
        """The signal to stop for now, or None; every process of a run gets the same answer here."""
        return signals.agreed_signal(self.received)

    def interrupt(self, signum: int, where: str) -> NoReturn:
        """Waits for the pending save and raises Interrupted: ``"SIGTERM received: " + where``."""
        self.confirm()
        raise Interrupted(f"{signals.name(signum)} received: {where}", signum)

    def end_chunk(self, *, step: int, state: Any, metrics: Mapping[str, np.ndarray],
                  describe: Callable[[tuple[int, ...], str, float], str], log: Callable[[int | None], None],
                  save: bool, last: bool, where: Callable[[], str]) -> None:
        """Ends one chunk in the loop's fixed order: check finite, log, save, stop on a signal.

        ``metrics`` maps names to host arrays [..., time]; when one is not finite, ``log(k)`` gets the
        number k of finite entries along time before it (what may still be logged) and NonFinite is
        raised, nothing saved. Otherwise ``log(None)`` logs the whole chunk, then the ``state`` at
        ``step`` (or what a function ``state()`` returns, made only when it is saved) is saved when
        ``save`` is due or a signal arrived, and a signal then raises Interrupted with ``where()``
        saying where to resume. The ``last`` chunk of a run asks for no signal: it finishes the run.
        """
        bad = first_non_finite(metrics)
        if bad is not None:
            log(bad[0][-1])
            self.check_finite(metrics, describe)
        log(None)
        signum = None if last else self.stop_signal()
        if save or signum is not None:
            self.save(step, state() if callable(state) else state)
        if signum is not None:
            self.interrupt(signum, where())

    def check_finite(self, values: Mapping[str, np.ndarray], describe: Callable[[tuple[int, ...], str, float],
                                                                                  str]) -> None:
        """Raises NonFinite when any value is not finite: ``describe(index, name, value)`` says where, and
        the message adds that nothing was saved and which checkpoint holds the last good state."""
        bad = first_non_finite(values)
        if bad is None:
            return
        newest = self.latest_step()
        kept = (f"the checkpoint at {self.unit} {newest} in {self.directory} holds the last good state"
                if newest is not None else "there is no earlier checkpoint")
        raise NonFinite(f"{describe(*bad)}, so training stopped without saving; {kept}")


@contextlib.contextmanager
def open_run(directory: str | None, *, kind: str, record: dict, abstract: Any,
             must_match: Mapping[str, Any] | None = None, upgrade: Callable[[dict], dict] | None = None,
             keep: int | None = 3, received: list[int] | None = None, label: str = "",
             unit: str = "step") -> Iterator[Run]:
    """Opens a run on ``directory`` (None: no checkpoints) and yields its ``Run``.

    ``record`` (with ``kind``) is saved beside every checkpoint; ``must_match`` lists what a
    checkpoint must share with this run to be resumed (``upgrade`` first brings an older
    checkpoint's record up to date); ``abstract`` is the state's abstract tree
    (``jax.eval_shape``) or a function of the checkpoint's record that returns it. The caller
    holds the run's lock (``workdir.claim``); one that opens several runs in turn passes its own
    ``received`` signal list, so a signal between them is not lost. On leaving the block,
    every save has finished; on a normal exit the last one is confirmed to be on disk. ``unit`` is
    what the checkpoints' numbers count ("step" or "epoch"), for messages.
    """
    with contextlib.ExitStack() as stack:
        if received is None:
            received = stack.enter_context(signals.deferred_signals())
        manager = None
        if directory is not None:
            manager = checkpoint.open_manager(directory, max_to_keep=keep)
            stack.callback(manager.close)
            # Unwound before the lock is released: a save already started completes, even after a failure.
            stack.callback(manager.wait_until_finished)
            stack.enter_context(checkpoint.quiet_failed_restores())
            stack.enter_context(checkpoint.quiet_failed_saves())  # a failed save is one sentence, at confirm
        run = Run(directory=directory, label=label, record=record, manager=manager, received=received,
                  writer=parallel.is_writer(), unit=unit)
        if manager is not None:
            found = checkpoint.restore_latest_good(manager, abstract, kind=kind, must_match=must_match,
                                                   upgrade=upgrade, set_aside=True)
            if found is not None:
                run.state, run.saved_record, run.start = found
        yield run
        run.confirm()

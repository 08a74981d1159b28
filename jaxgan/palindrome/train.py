"""Part 1 as one call: every (model, encoding) sweep of a study, checkpointed per chunk, resumable.

``train(config, checkpoint_dir)`` trains every sweep and returns the results dict;
``train_and_evaluate(config, workdir, checkpoint_dir)`` also writes results.json, summary.md and
the figures (``jaxgan.palindrome.summary``). Both are what ``experiments.palindrome`` and the
whole-study report run.

Checkpoints: each sweep has its own Orbax directory ``checkpoint_dir/MODEL-ENCODING``, saved
(asynchronously) after every chunk of epochs with the stacked RunState and the metrics of
every epoch so far, through the project's one run loop (``jaxgan.runtime.loop``): a run that is
killed restarts from the end of its newest complete chunk and ends bit for bit where an
unbroken run ends, metrics included. ``config.epochs`` is the total: a finished study whose
checkpoints are kept continues to a larger total. The whole study holds the lock of
``checkpoint_dir``; SIGINT or SIGTERM stops it at the end of the current chunk, after that
chunk's checkpoint is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxgan.configs.base import to_record, with_legacy
from jaxgan.configs.palindrome import PalindromeConfig
from jaxgan.errors import UserError
from jaxgan.palindrome import summary
from jaxgan.palindrome.steps import METRICS, RunConfig
from jaxgan.palindrome.sweep import init_sweep, pair_arrays, run_lengths, sweep_chunks
from jaxgan.runtime import checkpoint, loop, signals

KIND = "palindrome-sweep"

Progress = Callable[[str, int], Callable[[int, dict], None] | None]


def check_checkpoint_root(checkpoint_dir: str) -> None:
    """Refuses a directory that is itself one run's checkpoint directory (a GAN's, a classifier's, a sweep's).

    The study keeps one sub-directory per sweep below ``checkpoint_dir``, so checkpoints
    directly inside it belong to something else.
    """
    kind = checkpoint.kind_at(checkpoint_dir)
    if kind is None:
        return
    what = "one palindrome sweep's" if kind == KIND else f"a {kind!r}"
    raise UserError(f"{os.path.abspath(checkpoint_dir)} is {what} checkpoint directory, but the palindrome "
                    f"study needs a directory of its own, in which it keeps one folder per model and "
                    f"encoding; choose another checkpoint directory")


def sweep_record(run_config: RunConfig, lengths: Sequence[int], seeds: Sequence[int], epochs: int) -> dict:
    """What a sweep checkpoint records about the sweep that wrote it."""
    return {"kind": KIND, **dataclasses.asdict(run_config), "lengths": list(lengths), "seeds": list(seeds),
            "epochs": epochs}


def sweep_target(run_config: RunConfig, lengths: Sequence[int], seeds: Sequence[int], epochs: int) -> dict:
    """The abstract checkpoint of a sweep: ``{"runs": RunState [R, ...], "history": {name: [R, epochs]}}``."""
    runs, _ = jax.eval_shape(lambda: init_sweep(*pair_arrays(lengths, seeds), run_config))
    shape = (len(lengths) * len(seeds), epochs)
    return {"runs": runs, "history": {name: jax.ShapeDtypeStruct(shape, np.float32) for name in METRICS}}


def train(config: PalindromeConfig, checkpoint_dir: str | None, *, progress: Progress | None = None,
          log: Callable[[str], None] | None = None, restart: bool = False) -> dict:
    """Trains (or resumes) every sweep of ``config``; returns the results dict.

    ``progress(label, epochs)`` may return an ``on_chunk(epochs_done, metrics)`` callback for
    each sweep; a resumed sweep calls it first with the resumed epoch and the metrics so far.
    With a ``checkpoint_dir``, every chunk of every sweep is checkpointed in
    ``checkpoint_dir/MODEL-ENCODING`` and a sweep with checkpoints of the same settings resumes
    from its newest good one (damaged newer ones are set aside with a CheckpointWarning; when
    none restores, ``restart`` allows a fresh start), keeping the newest ``config.keep_checkpoints``.
    ``log`` gets one line per resumed sweep. Raises ``loop.Interrupted`` after a checkpoint when
    SIGINT or SIGTERM arrived, and ``loop.NonFinite`` (without saving) when a metric stops being finite.

    Results: ``{"config": the study's settings, "runs": [one dict per (model, encoding, length,
    seed) with its metrics per epoch and "final_val_acc"]}``.
    """
    config.validate()
    lengths, seeds = list(config.lengths), list(config.seeds)
    runs = []
    with contextlib.ExitStack() as stack:
        if checkpoint_dir is not None:
            check_checkpoint_root(checkpoint_dir)
            try:
                os.makedirs(checkpoint_dir, exist_ok=True)
            except OSError as err:
                raise UserError(f"cannot create checkpoint directory {checkpoint_dir}: "
                                f"{err.strerror}") from None
            stack.enter_context(checkpoint.lock(checkpoint_dir))
        received = stack.enter_context(signals.deferred_signals())
        for index, (model, encoding) in enumerate(config.sweeps):
            run_config = RunConfig.of(config, model, encoding, max(lengths))
            directory = checkpoint_dir and os.path.join(checkpoint_dir, f"{model}-{encoding}")
            metrics = train_sweep(run_config, lengths, seeds, config.epochs, directory,
                                  label=f"{model}/{encoding}", chunk_epochs=config.chunk_epochs,
                                  strategy=config.strategy, keep=config.keep_checkpoints, progress=progress,
                                  log=log, restart=restart, received=received,
                                  last=index == len(config.sweeps) - 1)
            for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
                run = {"model": model, "encoding": encoding, "length": length, "seed": seed}
                run.update({name: metrics[name][r].round(6).tolist() for name in METRICS})
                run["final_val_acc"] = run["val_acc"][-1]
                runs.append(run)
    # The results' settings: all but how many checkpoints were kept, which says nothing about them.
    record = {**to_record(config), "seeds": seeds}
    del record["keep_checkpoints"]
    return {"config": record, "runs": runs}


def train_and_evaluate(config: PalindromeConfig, workdir: str, checkpoint_dir: str | None, **kwargs) -> dict:
    """``train`` and then ``summary.write_results`` into ``workdir``; returns the results with
    ``"written"``, the paths written (none on a process other than 0)."""
    results = train(config, checkpoint_dir, **kwargs)
    return {**results, "written": summary.write_results(results, workdir)}


def train_sweep(run_config: RunConfig, lengths: list[int], seeds: list[int], epochs: int,
                directory: str | None, *, label: str, chunk_epochs: int, strategy: str, keep: int,
                progress: Progress | None = None, log: Callable[[str], None] | None = None,
                restart: bool = False, received: list[int] | None = None,
                last: bool = True) -> dict[str, np.ndarray]:
    """One sweep from its newest good checkpoint in ``directory`` (or from scratch) to ``epochs``; returns
    metrics ``{name: [R, epochs]}``.

    A checkpoint of fewer epochs continues to ``epochs`` (its metrics are kept); one of more is
    refused. Stops after a chunk's checkpoint when a signal was received (``received``, the
    caller's list; its own otherwise), unless that chunk ended the study (``last``): then the
    results are written as usual.
    """
    record = sweep_record(run_config, lengths, seeds, epochs)
    with loop.open_run(directory, kind=KIND, record=record, label=label, keep=keep, restart=restart,
                       must_match={k: v for k, v in record.items() if k not in ("kind", "epochs")},
                       upgrade=_upgrade, lock=False, unit="epoch", received=received,
                       abstract=lambda saved: sweep_target(run_config, lengths, seeds,
                                                           saved["epochs"])) as run:
        history = {name: np.full((len(lengths) * len(seeds), epochs), np.nan, np.float32) for name in METRICS}
        start = run.start
        if run.resumed:
            if start > epochs:
                raise UserError(f"the checkpoint in {directory} is at epoch {start}, beyond the {epochs} "
                                f"epochs asked for; ask for {start} or more, or use another checkpoint "
                                f"directory")
            for name in METRICS:
                saved = np.asarray(run.state["history"][name])
                history[name][:, :start] = saved[:, :start]
            if log is not None:
                done = "already trained" if start >= epochs else "resuming"
                log(f"{label}: {done} from the checkpoint at epoch {start} of {epochs} in {directory}")
        on_chunk = progress(label, epochs) if progress is not None else None
        if on_chunk is not None and start:
            on_chunk(start, {name: history[name][:, :start] for name in METRICS})
        runs = data = None  # a sweep already trained to the end needs neither
        if start < epochs:
            # The data is made again from the keys; the runs come from the checkpoint when there is one.
            runs, data = init_sweep(*pair_arrays(lengths, seeds), run_config)
            runs = runs if not run.resumed else run.state["runs"]

        def describe(index: tuple[int, ...], name: str, value: float) -> str:
            """Where a non-finite metric appeared: the run (length, seed) and the epoch."""
            r, epoch = index
            return (f"{name} of {label} at T={lengths[r // len(seeds)]}, seed {seeds[r % len(seeds)]} "
                    f"became {value} in epoch {first + epoch + 1}")

        for done, trained, metrics in sweep_chunks(runs, data, run_config, epochs, start=start,
                                                   chunk_epochs=chunk_epochs, strategy=strategy,
                                                   run_lengths=run_lengths(lengths, seeds)):
            first = done - len(metrics["train_loss"][0])
            run.check_finite(metrics, describe)  # before the save: the last good checkpoint stays the newest
            for name in METRICS:
                history[name][:, first:done] = metrics[name]
            # Copies: the save runs in the background while the next chunk fills ``history``.
            run.save(done, {"runs": trained, "history": {k: v.copy() for k, v in history.items()}})
            if on_chunk is not None:
                on_chunk(done, metrics)
            signum = run.stop_signal()
            if signum is not None and (done < epochs or not last):
                run.interrupt(signum, _where(run, label, done))
        if start >= epochs and not last:  # nothing trained here: a signal between sweeps still stops
            signum = run.stop_signal()
            if signum is not None:
                run.interrupt(signum, _where(run, label, start))
    return history


def _upgrade(saved: dict) -> dict:
    """A sweep record of older code, with the settings it predates (init, shuffle) as that code had them."""
    return with_legacy(PalindromeConfig, saved)


def _where(run: loop.Run, label: str, epoch: int) -> str:
    """Where an interrupted study can resume, for the Interrupted message."""
    if run.directory is None:
        return f"{label} was at epoch {epoch}; without a checkpoint directory nothing was saved"
    return f"saved {label} at epoch {epoch} in {run.directory}; the same command resumes from there"

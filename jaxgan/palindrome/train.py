"""Part 1 as one call: every (model, encoding) sweep of a study, checkpointed per chunk, resumable.

``train_and_evaluate(config, workdir)`` claims the run folder (``jaxgan.runtime.workdir``), trains
every sweep (``train``) and writes results.json, summary.md and the figures there
(``jaxgan.palindrome.summary``). It is what ``experiments.palindrome`` and the whole-study report run.

Checkpoints: each sweep has its own Orbax directory ``WORKDIR/checkpoints/MODEL-ENCODING``, saved
(asynchronously) after every chunk of epochs with the stacked RunState and the metrics of
every epoch so far, through the project's one run loop (``jaxgan.runtime.loop``): a run that is
killed restarts from the end of its newest complete chunk and ends bit for bit where an
unbroken run ends, metrics included. ``config.epochs`` is the total: a finished study whose
checkpoints are kept continues to a larger total. The study holds the lock of its folder;
SIGINT or SIGTERM stops it at the end of the current chunk, after that chunk's checkpoint is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxgan.configs.base import flag_names, resume_keys, to_record, with_legacy
from jaxgan.configs.palindrome import PalindromeConfig
from jaxgan.errors import UserError
from jaxgan.palindrome import summary
from jaxgan.palindrome.steps import METRICS, RunConfig
from jaxgan.palindrome.sweep import init_sweep, pair_arrays, run_lengths, sweep_chunks
from jaxgan.runtime import loop, parallel, signals, tensorboard
from jaxgan.runtime import workdir as workdir_lib

KIND = "palindrome-sweep"

RUN_KIND = "palindrome"  # the study's run folder; KIND is each sweep's checkpoint directory


def sweep_record(run_config: RunConfig, lengths: Sequence[int], seeds: Sequence[int], epochs: int) -> dict:
    """What a sweep checkpoint records about the sweep that wrote it."""
    return {"kind": KIND, **dataclasses.asdict(run_config), "lengths": list(lengths), "seeds": list(seeds),
            "epochs": epochs}


def sweep_target(run_config: RunConfig, lengths: Sequence[int], seeds: Sequence[int], epochs: int) -> dict:
    """The abstract checkpoint of a sweep: ``{"runs": RunState [R, ...], "history": {name: [R, epochs]}}``."""
    runs, _ = jax.eval_shape(lambda: init_sweep(*pair_arrays(lengths, seeds), run_config))
    shape = (len(lengths) * len(seeds), epochs)
    return {"runs": runs, "history": {name: jax.ShapeDtypeStruct(shape, np.float32) for name in METRICS}}


def train(config: PalindromeConfig, checkpoint_dir: str | None, *, progress: loop.ProgressFn = loop.ignore,
          received: list[int] | None = None, opened: Callable[[], None] | None = None,
          events: tensorboard.Writer | None = None) -> dict:
    """Trains (or resumes) every sweep of ``config``; returns the results dict. The caller holds the run
    folder (``train_and_evaluate`` claims it; tests and benchmarks may call this alone).

    With a ``checkpoint_dir``, every chunk of every sweep is checkpointed in
    ``checkpoint_dir/MODEL-ENCODING`` and a sweep with checkpoints of the same settings resumes
    from its newest good one (damaged newer ones are set aside with a CheckpointWarning),
    keeping the newest ``config.keep_checkpoints``. ``progress`` gets a "start" event per sweep (its
    label ``MODEL/ENCODING``, resumed or not) and a "chunk" event after every chunk. Raises
    ``loop.Interrupted`` after a checkpoint when SIGINT or SIGTERM arrived, and ``loop.NonFinite``
    (without saving) when a metric stops being finite. ``opened()`` is called as each sweep's
    checkpoints have opened, before it trains. ``events`` (a TensorBoard writer) gets every run's
    metrics of every epoch as it trains: ``MODEL-ENCODING/T<length>/seed<seed>/METRIC``
    (``rnn-scalar/T15/seed0/val_acc``).

    Results: ``{"config": the study's settings, "runs": [one dict per (model, encoding, length,
    seed) with its metrics per epoch and "final_val_acc"]}``.
    """
    config.validate()
    lengths, seeds = list(config.lengths), list(config.seeds)
    runs = []
    with contextlib.ExitStack() as stack:
        if received is None:
            received = stack.enter_context(signals.deferred_signals())
        for index, (model, encoding) in enumerate(config.sweeps):
            run_config = RunConfig.of(config, model, encoding, max(lengths))
            directory = checkpoint_dir and os.path.join(checkpoint_dir, f"{model}-{encoding}")
            metrics = train_sweep(run_config, lengths, seeds, config.epochs, directory,
                                  label=f"{model}/{encoding}", chunk_epochs=config.chunk_epochs,
                                  strategy=config.strategy, keep=config.keep_checkpoints, progress=progress,
                                  received=received, last=index == len(config.sweeps) - 1, opened=opened,
                                  events=events)
            for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
                run = {"model": model, "encoding": encoding, "length": length, "seed": seed}
                run.update({name: metrics[name][r].round(6).tolist() for name in METRICS})
                run["final_val_acc"] = run["val_acc"][-1]
                runs.append(run)
    return {"config": results_record(config), "runs": runs}


def results_record(config: PalindromeConfig) -> dict:
    """The study's settings as its results and run folder record them: all but how many checkpoints were
    kept, which says nothing about them, and with the seeds spelled out."""
    record = {**to_record(config), "seeds": list(config.seeds)}
    del record["keep_checkpoints"]
    return record


def identity(config: PalindromeConfig) -> dict:
    """What another study must share with this one to continue it in the same folder."""
    return {k: v for k, v in to_record(config).items() if k in resume_keys(PalindromeConfig)}


def check_workdir(config: PalindromeConfig, workdir: str, *, checkpoint_dir: str | None = None,
                  restart: bool = False) -> bool:
    """The checks ``train_and_evaluate`` makes of its run folder before it writes anything; whether the
    folder holds this study already."""
    return workdir_lib.check(workdir, kind=RUN_KIND, must_match=identity(config),
                             checkpoint_dir=checkpoint_dir,
                             checkpoint_kind=KIND, nested=True, names=flag_names(PalindromeConfig),
                             restart=restart)


def train_and_evaluate(config: PalindromeConfig, workdir: str, *, checkpoint_dir: str | None = None,
                       restart: bool = False, progress: loop.ProgressFn = loop.ignore) -> dict:
    """Trains (or resumes) the study in the run folder ``workdir`` and writes its results there.

    The folder (``jaxgan.runtime.workdir.claim``) holds ``config.json``, ``results.json``,
    ``summary.md``, the figures and the checkpoints (``workdir/checkpoints/MODEL-ENCODING`` unless
    ``checkpoint_dir`` says otherwise); a folder that holds this study resumes it (``--epochs`` is a
    total: a finished study continues to more), one that holds another run is refused, and
    ``restart`` moves what it held aside. Returns the results (see ``train``) with ``"written"``, the
    paths written (none on a process other than 0), and the run's folders.
    """
    config.validate()
    with workdir_lib.claim(workdir, kind=RUN_KIND, record=results_record(config), must_match=identity(config),
                           checkpoint_dir=checkpoint_dir, checkpoint_kind=KIND, nested=True,
                           names=flag_names(PalindromeConfig), restart=restart,
                           log=lambda text: progress(loop.Progress("message", "palindrome", 0, config.epochs,
                                                                   text=text))) as folder:
        with tensorboard.open_writer(folder.path, enabled=parallel.is_writer(), lazy=True) as events:

            def begin() -> None:
                """The study's checkpoints opened: the folder is its run now, and its settings are logged."""
                if not folder.committed:
                    folder.commit()
                    events.hparams(results_record(config), metrics=["final_val_acc"])

            results = train(config, folder.checkpoint_dir, progress=progress, opened=begin, events=events)
        written = summary.write_results(results, folder.path)
    return {**results, "written": written, "workdir": folder.path, "checkpoint_dir": folder.checkpoint_dir}


def train_sweep(run_config: RunConfig, lengths: list[int], seeds: list[int], epochs: int,
                directory: str | None, *, label: str, chunk_epochs: int, strategy: str, keep: int,
                progress: loop.ProgressFn = loop.ignore, received: list[int] | None = None,
                last: bool = True, opened: Callable[[], None] | None = None,
                events: tensorboard.Writer | None = None) -> dict[str, np.ndarray]:
    """One sweep from its newest good checkpoint in ``directory`` (or from scratch) to ``epochs``; returns
    metrics ``{name: [R, epochs]}``.

    A checkpoint of fewer epochs continues to ``epochs`` (its metrics are kept); one of more is
    refused. Stops after a chunk's checkpoint when a signal was received (``received``, the
    caller's list; its own otherwise), unless that chunk ended the study (``last``): then the
    results are written as usual.
    """
    record = sweep_record(run_config, lengths, seeds, epochs)
    with loop.open_run(directory, kind=KIND, record=record, label=label, keep=keep,
                       must_match={k: v for k, v in record.items() if k not in ("kind", "epochs")},
                       upgrade=_upgrade, unit="epoch", received=received,
                       abstract=lambda saved: sweep_target(run_config, lengths, seeds,
                                                           saved["epochs"])) as run:
        if opened is not None:
            opened()
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
        progress(loop.Progress("start", label, start, epochs, resumed=run.resumed,
                               text=f"checkpoint in {directory}" if run.resumed else ""))
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

            def log(upto: int | None, first: int = first, done: int = done, metrics: dict = metrics) -> None:
                """The chunk into the history (kept in the checkpoint), and its progress event."""
                if upto is not None:
                    return
                for name in METRICS:
                    history[name][:, first:done] = metrics[name]
                if events is not None:
                    _log_events(events, label, lengths, seeds, metrics, first)
                progress(loop.Progress("chunk", label, done, epochs,
                                       metrics={"val_acc": float(metrics["val_acc"][:, -1].mean())}))

            # Copies, made when saving: the save runs in the background while the next chunk fills history.
            run.end_chunk(step=done, state=lambda trained=trained: {
                              "runs": trained, "history": {k: v.copy() for k, v in history.items()}},
                          metrics=metrics, describe=describe, log=log, save=True,
                          last=done >= epochs and last,
                          where=lambda done=done: _where(run, label, done))
        if start >= epochs and not last:  # nothing trained here: a signal between sweeps still stops
            signum = run.stop_signal()
            if signum is not None:
                run.interrupt(signum, _where(run, label, start))
    return history


def _log_events(events: tensorboard.Writer, label: str, lengths: list[int], seeds: list[int],
                metrics: dict[str, np.ndarray], first: int) -> None:
    """One chunk of a sweep into TensorBoard: metrics [runs, epochs] of each run at each epoch (1, 2, ...)."""
    sweep = label.replace("/", "-")
    for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
        for e in range(metrics["train_loss"].shape[1]):
            events.scalars(first + e + 1, {f"{sweep}/T{length}/seed{seed}/{name}": metrics[name][r, e]
                                           for name in METRICS})
    events.flush()


def _upgrade(saved: dict) -> dict:
    """A sweep record of older code, with the settings it predates (init, shuffle) as that code had them."""
    return with_legacy(PalindromeConfig, saved)


def _where(run: loop.Run, label: str, epoch: int) -> str:
    """Where an interrupted study can resume, for the Interrupted message."""
    if run.directory is None:
        return f"{label} was at epoch {epoch}; without a checkpoint directory nothing was saved"
    return f"saved {label} at epoch {epoch} in {run.directory}; the same command resumes from there"

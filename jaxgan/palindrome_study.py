"""Part 1 as one call: sweep every model and encoding, checkpoint every chunk, resume, and summarise.

``run_study`` trains; ``write_results`` writes results.json, summary.md and the figures.
Both are used by ``experiments.palindrome`` and the whole-study report.

Checkpoints: each (model, encoding) sweep has its own Orbax directory
``checkpoint_dir/MODEL-ENCODING``, saved (asynchronously) after every chunk of epochs with
the stacked RunState and the metrics of every epoch so far, so a run that is killed restarts
from the end of its newest complete chunk and ends bit for bit where an unbroken run ends,
metrics included. The whole study holds ``checkpoint.lock(checkpoint_dir)``; SIGINT or
SIGTERM stops it at the end of the current chunk, after that chunk's checkpoint is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxgan import checkpoint, parallel, signals
from jaxgan.data.palindrome import ENCODINGS, MAX_INPUT_LENGTH, split_sizes
from jaxgan.errors import UserError
from jaxgan.models.recurrent import CELLS
from jaxgan.train.palindrome import (
    METRICS,
    PalindromeConfig,
    init_sweep,
    pair_arrays,
    run_lengths,
    sweep_chunks,
)

CHECKPOINT_KIND = "palindrome-sweep"
CONVERGED = 0.99  # validation accuracy that counts as "learned"
KEEP_CHECKPOINTS = 2  # per sweep: the newest, and one to fall back on if the newest is damaged


class NonFiniteLoss(UserError):
    """A metric became NaN or infinite; the sweep stops without saving that chunk."""


def validate(models: Sequence[str], encodings: Sequence[str], lengths: Sequence[int],
             num_seeds: int, epochs: int, base: PalindromeConfig | None = None) -> None:
    """Raises UserError with one sentence for the first setting that is out of range.

    With ``base``, its data settings are checked too (both splits non-empty, a batch that fits).
    """
    for model in models:
        if model not in CELLS:
            raise UserError(f"unknown model {model!r}; choose from {', '.join(sorted(CELLS))}")
    for encoding in encodings:
        if encoding not in ENCODINGS:
            raise UserError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    for length in lengths:
        if not 1 <= length <= MAX_INPUT_LENGTH:
            raise UserError(f"input length {length} is out of range: it must be between 1 and "
                            f"{MAX_INPUT_LENGTH}")
    if num_seeds < 1:
        raise UserError(f"the number of seeds must be at least 1, not {num_seeds}")
    if epochs < 1:
        raise UserError(f"the number of epochs must be at least 1, not {epochs}")
    if base is not None:
        num_train, num_val = split_sizes(base.num_examples, base.val_fraction)
        if num_train < 1 or num_val < 1:
            raise UserError(f"{base.num_examples} palindromes are too few to split into training and "
                            f"validation examples: use at least 3")
        if base.batch_size > num_train:
            raise UserError(f"the batch size {base.batch_size} is larger than the {num_train} training "
                            f"examples of a run ({base.num_examples} palindromes less "
                            f"{num_val} for validation)")


def check_checkpoint_root(checkpoint_dir: str) -> None:
    """Refuses a directory that is itself one run's checkpoint directory (a GAN's, a classifier's, a sweep's).

    The study keeps one sub-directory per sweep below ``checkpoint_dir``, so checkpoints
    directly inside it belong to something else.
    """
    kind = checkpoint.kind_at(checkpoint_dir)
    if kind is None:
        return
    what = "one palindrome sweep's" if kind == CHECKPOINT_KIND else f"a {kind!r}"
    raise UserError(f"{os.path.abspath(checkpoint_dir)} is {what} checkpoint directory, but the palindrome "
                    f"study needs a directory of its own, in which it keeps one folder per model and "
                    f"encoding; choose another checkpoint directory")


def run_study(base: PalindromeConfig, models: Sequence[str], encodings: Sequence[str],
              lengths: Sequence[int], seeds: Sequence[int], epochs: int, checkpoint_dir: str | None,
              *, chunk_epochs: int = 10, strategy: str = "auto",
              progress: Callable[[str, int], Callable[[int, dict], None]] | None = None,
              log: Callable[[str], None] | None = None, restart: bool = False,
              keep_checkpoints: int = KEEP_CHECKPOINTS) -> dict:
    """Trains (or resumes) every (model, encoding) sweep over lengths x seeds; returns the results dict.

    ``progress(label, epochs)`` may return an ``on_chunk(epochs_done, metrics)`` callback for
    each sweep; a resumed sweep calls it first with the resumed epoch and the metrics so far.
    With a ``checkpoint_dir``, every chunk of every sweep is checkpointed in
    ``checkpoint_dir/MODEL-ENCODING`` and a sweep with checkpoints of the same settings resumes
    from its newest good one (damaged newer ones are set aside with a CheckpointWarning; when
    none restores, ``restart`` allows a fresh start), keeping the newest ``keep_checkpoints``.
    ``log`` gets one line per resumed sweep.
    Raises ``signals.Interrupted`` after a checkpoint when SIGINT or SIGTERM arrived, and
    ``NonFiniteLoss`` (without saving) when a metric stops being finite.
    """
    validate(models, encodings, lengths, len(seeds), epochs, base)
    lengths = sorted(set(lengths))
    seeds = list(seeds)
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
        sweeps = [(encoding, model) for encoding in encodings for model in models]
        for index, (encoding, model) in enumerate(sweeps):
            config = dataclasses.replace(base, model=model, encoding=encoding, max_length=max(lengths))
            directory = None
            if checkpoint_dir is not None:
                directory = os.path.join(checkpoint_dir, f"{model}-{encoding}")
            label = f"{model}/{encoding}"
            metrics = _train_sweep(config, lengths, seeds, epochs, directory, label=label,
                                   chunk_epochs=chunk_epochs, strategy=strategy, progress=progress, log=log,
                                   restart=restart, keep=keep_checkpoints, received=received,
                                   last=index == len(sweeps) - 1)
            for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
                run = {"model": model, "encoding": encoding, "length": length, "seed": seed}
                run.update({name: metrics[name][r].round(6).tolist() for name in METRICS})
                run["final_val_acc"] = run["val_acc"][-1]
                runs.append(run)
    config = dataclasses.asdict(base) | {"models": list(models), "encodings": list(encodings),
                                         "lengths": lengths, "seeds": seeds, "epochs": epochs}
    config.pop("model"), config.pop("encoding"), config.pop("max_length")
    return {"config": config, "runs": runs}


def checkpoint_config(config: PalindromeConfig, lengths, seeds, epochs) -> dict:
    """What a sweep checkpoint records about the sweep that wrote it (all of it must match to resume)."""
    return {"kind": CHECKPOINT_KIND, **dataclasses.asdict(config), "lengths": list(lengths),
            "seeds": list(seeds), "epochs": epochs}


def sweep_target(config: PalindromeConfig, lengths, seeds, epochs: int) -> dict:
    """The abstract checkpoint of a sweep: ``{"runs": RunState [R, ...], "history": {name: [R, epochs]}}``."""
    runs, _ = jax.eval_shape(lambda: init_sweep(*pair_arrays(lengths, seeds), config))
    shape = (len(lengths) * len(seeds), epochs)
    return {"runs": runs, "history": {name: jax.ShapeDtypeStruct(shape, np.float32) for name in METRICS}}


def _first_non_finite(metrics: dict[str, np.ndarray]) -> tuple[int, int, str, float] | None:
    """(epoch index, run index, metric, value) of the earliest non-finite chunk metric, or None."""
    bad = None
    for name in METRICS:
        runs, epochs = np.nonzero(~np.isfinite(metrics[name]))
        if runs.size:
            i = int(np.argmin(epochs))
            if bad is None or epochs[i] < bad[0]:
                bad = (int(epochs[i]), int(runs[i]), name, float(metrics[name][runs[i], epochs[i]]))
    return bad


def _train_sweep(config: PalindromeConfig, lengths: list[int], seeds: list[int], epochs: int,
                 directory: str | None, *, label: str, chunk_epochs: int, strategy: str,
                 progress: Callable[[str, int], Callable[[int, dict], None]] | None,
                 log: Callable[[str], None] | None,
                 restart: bool, keep: int, received: list[int], last: bool) -> dict[str, np.ndarray]:
    """One sweep from its newest good checkpoint (or from scratch) to ``epochs``; returns metrics [R, epochs].

    Stops (``_stop``) after a chunk's checkpoint when a signal was received, unless that chunk
    ended the study: then the results are written as usual.
    """
    history = {name: np.full((len(lengths) * len(seeds), epochs), np.nan, np.float32) for name in METRICS}
    record = checkpoint_config(config, lengths, seeds, epochs)
    start, restored = 0, None
    with contextlib.ExitStack() as stack:
        manager = None
        if directory is not None:  # checked before anything is compiled: a mismatch is refused at once
            manager = checkpoint.open_manager(directory, max_to_keep=keep)
            stack.callback(manager.close)
            stack.callback(manager.wait_until_finished)  # a save already started completes, even on error
            found = checkpoint.restore_latest_good(manager, sweep_target(config, lengths, seeds, epochs),
                                                   kind=CHECKPOINT_KIND, must_match=record, set_aside=True,
                                                   restart=restart)
            if found is not None:
                state, _, start = found
                restored = state["runs"]
                history = {name: np.array(state["history"][name]) for name in METRICS}
                if log is not None:
                    done = "already trained" if start >= epochs else "resuming"
                    log(f"{label}: {done} from the checkpoint at epoch {start} of {epochs} in {directory}")
        on_chunk = progress(label, epochs) if progress is not None else None
        if on_chunk is not None and start:
            on_chunk(start, {name: history[name][:, :start] for name in METRICS})
        runs = data = None  # a sweep already trained to the end needs neither
        if start < epochs:
            runs, data = init_sweep(*pair_arrays(lengths, seeds), config)  # data: made again from the keys
            runs = runs if restored is None else restored
        for done, trained, metrics in sweep_chunks(runs, data, config, epochs, start=start,
                                                   chunk_epochs=chunk_epochs, strategy=strategy,
                                                   run_lengths=run_lengths(lengths, seeds)):
            first = done - len(metrics["train_loss"][0])
            bad = _first_non_finite(metrics)
            if bad is not None:  # this chunk is not saved: the newest checkpoint stays the last good one
                epoch, run, name, value = bad
                newest = checkpoint.latest_step(manager) if manager is not None else None
                kept = (f"the checkpoint at epoch {newest} in {directory} holds the last good state"
                        if newest is not None else "there is no earlier checkpoint")
                raise NonFiniteLoss(f"{name} of {label} at T={lengths[run // len(seeds)]}, seed "
                                    f"{seeds[run % len(seeds)]} became {value} in epoch {first + epoch + 1}, "
                                    f"so training stopped without saving; {kept}")
            for name in METRICS:
                history[name][:, first:done] = metrics[name]
            if manager is not None:
                # Copies: the save runs in the background while the next chunk fills ``history``.
                saved = {k: v.copy() for k, v in history.items()}
                checkpoint.save(manager, done, {"runs": trained, "history": saved}, record)
            if on_chunk is not None:
                on_chunk(done, metrics)
            if received and done < epochs:
                _stop(manager, received[0], label, done, directory)
        if received and not last:  # between two sweeps: this one is complete and saved
            _stop(manager, received[0], label, epochs, directory)
    return history


def _stop(manager, signum: int, label: str, epoch: int, directory: str | None) -> None:
    """Waits for the pending save and raises Interrupted saying where the run can resume."""
    if manager is not None:
        manager.wait_until_finished()
        where = f"saved {label} at epoch {epoch} in {directory}; the same command resumes from there"
    else:
        where = f"{label} was at epoch {epoch}; without a checkpoint directory nothing was saved"
    raise signals.Interrupted(f"{signals.name(signum)} received: {where}", signum)


def epochs_to_converge(val_acc: Sequence[float]) -> int | None:
    """First epoch (1-based) whose validation accuracy reaches CONVERGED, or None."""
    hits = np.flatnonzero(np.asarray(val_acc) >= CONVERGED)
    return int(hits[0]) + 1 if hits.size else None


def lowest_after_converging(val_acc: Sequence[float]) -> float | None:
    """The lowest validation accuracy from the epoch a run first reached CONVERGED on (None if it never
    did): a run that learned and then fell back shows it here."""
    first = epochs_to_converge(val_acc)
    return None if first is None else float(np.min(np.asarray(val_acc)[first - 1:]))


def summary_rows(results: dict) -> list[dict]:
    """One row per (model, encoding, length): final val accuracy over seeds and convergence."""
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        groups.setdefault((run["encoding"], run["model"], run["length"]), []).append(run)
    rows = []
    for (encoding, model, length), runs in sorted(groups.items()):
        finals = np.array([r["final_val_acc"] for r in runs])
        rows.append({"encoding": encoding, "model": model, "length": length,
                     "mean": float(finals.mean()), "std": float(finals.std()),
                     "per_seed": {r["seed"]: r["final_val_acc"] for r in runs},
                     "converged": [epochs_to_converge(r["val_acc"]) for r in runs],
                     "lowest_after": [lowest_after_converging(r["val_acc"]) for r in runs]})
    return rows


def describe_setup(config: dict) -> str:
    """One sentence naming the initialisation, the batch order and the encodings of a results config."""
    init = config.get("init", "flax")
    init_text = ("the study's initialisation (every weight and both biases of each gate from "
                 "U(±1/√fan_in), as PyTorch's nn.Linear)" if init == "study" else
                 "Flax's initialisation (LeCun-normal input weights, orthogonal recurrent weights, "
                 "one zero bias per gate)")
    order = ("batches reshuffled every epoch" if config.get("shuffle", True) else
             "batches in one fixed order every epoch, as the study's loader")
    encodings = " and ".join(config.get("encodings", ["scalar"]))
    return f"Initialisation: {init_text}; {order}; {encodings} digits."


def _mean_std(values: np.ndarray) -> str:
    """``mean ± std`` over seeds, or the one value when there is one seed."""
    return f"{values.mean():.3f}" if values.size == 1 else f"{values.mean():.3f} ± {values.std():.3f}"


def summary_markdown(results: dict) -> str:
    """Final validation accuracy (mean ± std over seeds) per model and length, as markdown, then
    every seed with the epoch it first reached 99% and its lowest accuracy after that."""
    rows = summary_rows(results)
    lengths = sorted({r["length"] for r in rows})
    seeds = results["config"]["seeds"]
    spread = "" if len(seeds) == 1 else ", mean ± std over seeds " + ", ".join(map(str, seeds))
    lines = [f"Final validation accuracy after {results['config']['epochs']} epochs{spread}. "
             + describe_setup(results["config"]), "",
             "| model | encoding | " + " | ".join(f"T={t}" for t in lengths) + " |",
             "|" + "---|" * (len(lengths) + 2)]
    for encoding in dict.fromkeys(r["encoding"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["encoding"] == encoding):
            cells = {r["length"]: r for r in rows if r["encoding"] == encoding and r["model"] == model}
            lines.append(f"| {model} | {encoding} | " + " | ".join(
                _mean_std(np.array(list(cells[t]["per_seed"].values()))) for t in lengths) + " |")
    lines += ["", f"Per seed ({', '.join(map(str, seeds))}): the final validation accuracy, the first epoch "
              f"at which it reached {CONVERGED:.0%} ('never' if it did not), and the lowest validation "
              f"accuracy from that epoch on (a run that learned and fell back shows it).", "",
              "| model | encoding | T | final accuracy | first epoch at 99% | lowest after |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        finals = ", ".join(f"{r['per_seed'][s]:.3f}" for s in seeds)
        epochs = ", ".join("never" if e is None else str(e) for e in r["converged"])
        lowest = ", ".join("-" if v is None else f"{v:.3f}" for v in r["lowest_after"])
        lines.append(f"| {r['model']} | {r['encoding']} | {r['length']} | {finals} | {epochs} | {lowest} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, workdir: str) -> list[str]:
    """Writes results.json, summary.md and the figures into ``workdir``; returns their paths.

    In a multi-process run only process 0 writes (``parallel.is_writer``); the others return [].
    """
    from jaxgan.plotting import palindrome as plots  # matplotlib only when writing figures

    if not parallel.is_writer():
        return []
    os.makedirs(workdir, exist_ok=True)
    written = [_write_atomic(os.path.join(workdir, "results.json"), json.dumps(results)),
               _write_atomic(os.path.join(workdir, "summary.md"), summary_markdown(results))]
    written += plots.save_all(results, workdir)
    return written


def _write_atomic(path: str, text: str) -> str:
    """Writes through a temporary file and a rename, so a reader never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path

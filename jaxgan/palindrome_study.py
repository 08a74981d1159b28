"""Part 1 as one call: sweep every model and encoding, checkpoint, and summarise.

``run_study`` trains; ``write_results`` writes results.json, summary.md and the figures.
Both are used by ``experiments.palindrome`` and the whole-study report.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from jaxgan import checkpoint
from jaxgan.data.palindrome import ENCODINGS, MAX_INPUT_LENGTH
from jaxgan.errors import UserError
from jaxgan.models.recurrent import CELLS
from jaxgan.train.palindrome import METRICS, PalindromeConfig, sweep

CHECKPOINT_KIND = "palindrome-sweep"
CONVERGED = 0.99  # validation accuracy that counts as "learned"


def validate(models: Sequence[str], encodings: Sequence[str], lengths: Sequence[int],
             num_seeds: int, epochs: int) -> None:
    """Raises UserError with one sentence for the first setting that is out of range."""
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


def run_study(base: PalindromeConfig, models: Sequence[str], encodings: Sequence[str],
              lengths: Sequence[int], seeds: Sequence[int], epochs: int, checkpoint_dir: str | None,
              *, chunk_epochs: int = 10, strategy: str = "auto",
              progress: Callable[[str, int], Callable[[int, dict], None]] | None = None) -> dict:
    """Trains every (model, encoding) sweep over lengths x seeds; returns the results dict.

    ``progress(label, epochs)`` may return an ``on_chunk`` callback for each sweep. The final
    stacked state of each sweep is saved under ``checkpoint_dir/MODEL-ENCODING``.
    """
    validate(models, encodings, lengths, len(seeds), epochs)
    lengths = sorted(set(lengths))
    runs = []
    for encoding in encodings:
        for model in models:
            config = dataclasses.replace(base, model=model, encoding=encoding, max_length=max(lengths))
            on_chunk = progress(f"{model}/{encoding}", epochs) if progress else None
            state, metrics = sweep(config, lengths, seeds, epochs, chunk_epochs=chunk_epochs,
                                   strategy=strategy, on_chunk=on_chunk)
            if checkpoint_dir is not None:
                save_sweep(os.path.join(checkpoint_dir, f"{model}-{encoding}"), state, config,
                           lengths, seeds, epochs)
            for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
                run = {"model": model, "encoding": encoding, "length": length, "seed": seed}
                run.update({name: metrics[name][r].round(6).tolist() for name in METRICS})
                run["final_val_acc"] = run["val_acc"][-1]
                runs.append(run)
    config = dataclasses.asdict(base) | {"models": list(models), "encodings": list(encodings),
                                         "lengths": lengths, "seeds": list(seeds), "epochs": epochs}
    config.pop("model"), config.pop("encoding"), config.pop("max_length")
    return {"config": config, "runs": runs}


def checkpoint_config(config: PalindromeConfig, lengths, seeds, epochs) -> dict:
    """What a sweep checkpoint records about the sweep that wrote it."""
    return {"kind": CHECKPOINT_KIND, **dataclasses.asdict(config), "lengths": list(lengths),
            "seeds": list(seeds), "epochs": epochs}


def save_sweep(directory: str, state, config: PalindromeConfig, lengths, seeds, epochs: int) -> None:
    """Saves a sweep's final stacked RunState (leading axis = run) with its config."""
    manager = checkpoint.open_manager(directory)
    checkpoint.save(manager, epochs, state, checkpoint_config(config, lengths, seeds, epochs))
    manager.wait_until_finished()
    manager.close()


def epochs_to_converge(val_acc: Sequence[float]) -> int | None:
    """First epoch (1-based) whose validation accuracy reaches CONVERGED, or None."""
    hits = np.flatnonzero(np.asarray(val_acc) >= CONVERGED)
    return int(hits[0]) + 1 if hits.size else None


def summary_rows(results: dict) -> list[dict]:
    """One row per (model, encoding, length): final val accuracy over seeds and convergence."""
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        groups.setdefault((run["encoding"], run["model"], run["length"]), []).append(run)
    rows = []
    for (encoding, model, length), runs in sorted(groups.items()):
        finals = np.array([r["final_val_acc"] for r in runs])
        converged = [epochs_to_converge(r["val_acc"]) for r in runs]
        rows.append({"encoding": encoding, "model": model, "length": length,
                     "mean": float(finals.mean()), "std": float(finals.std()),
                     "per_seed": {r["seed"]: r["final_val_acc"] for r in runs},
                     "converged": converged})
    return rows


def summary_markdown(results: dict) -> str:
    """Final validation accuracy (mean ± std over seeds) per model and length, as markdown."""
    rows = summary_rows(results)
    lengths = sorted({r["length"] for r in rows})
    header = "| model | encoding | " + " | ".join(f"T={t}" for t in lengths) + " |"
    lines = [header, "|" + "---|" * (len(lengths) + 2)]
    for encoding in dict.fromkeys(r["encoding"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["encoding"] == encoding):
            cells = {r["length"]: r for r in rows if r["encoding"] == encoding and r["model"] == model}
            lines.append(f"| {model} | {encoding} | " + " | ".join(
                f"{cells[t]['mean']:.3f} ± {cells[t]['std']:.3f}" for t in lengths) + " |")
    seeds = results["config"]["seeds"]
    lines += ["", f"Final validation accuracy after {results['config']['epochs']} epochs, mean ± std over "
              f"seeds {seeds}.", "", "| model | encoding | T | per seed | epoch reaching 99% val acc |",
              "|---|---|---|---|---|"]
    for r in rows:
        per_seed = ", ".join(f"{r['per_seed'][s]:.3f}" for s in seeds)
        epochs = ", ".join("-" if e is None else str(e) for e in r["converged"])
        lines.append(f"| {r['model']} | {r['encoding']} | {r['length']} | {per_seed} | {epochs} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, workdir: str) -> list[str]:
    """Writes results.json, summary.md and the figures into ``workdir``; returns their paths."""
    from jaxgan.plotting import palindrome as plots  # matplotlib only when writing figures

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

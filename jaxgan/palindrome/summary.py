"""Part 1's results for people: the summary table, the epoch each run learned, and the files and figures.

``summary_markdown(results)`` is the table ``experiments.palindrome`` prints and ``summary.md``
holds; ``write_results(results, workdir)`` writes results.json, summary.md and the figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from jaxgan.plotting import palindrome as plots
from jaxgan.runtime import files, parallel

CONVERGED = 0.99  # validation accuracy that counts as "learned"
CHANCE_BAND = 0.2  # a final accuracy at most this counts as "near chance" (10 classes: 0.1)
STUDY_MAX_LENGTH = 20  # the study measured T = 5, 10, 15 and 20; its finding is about those


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


def _lengths_text(lengths: list[int]) -> str:
    """T = 5, 10 and 15."""
    names = [str(t) for t in lengths]
    return "T = " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def finding(results: dict) -> str:
    """The study's question answered in words from ``results``: at which lengths each model learned
    (mean final validation accuracy >= 99%), stayed near chance (<= 20%) or ended in between.

    One sentence per model and encoding, then whether the study's finding (the LSTM learns every
    length, the vanilla RNN stays near chance at T >= 15) holds at the study's lengths (T <= 20,
    ``STUDY_MAX_LENGTH``) in these runs; longer lengths are beyond what the study measured and
    only enter the first sentences.
    """
    rows = summary_rows(results)
    sentences, holds = [], []
    for encoding in dict.fromkeys(r["encoding"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["encoding"] == encoding):
            mine = sorted((r for r in rows if r["model"] == model and r["encoding"] == encoding),
                          key=lambda r: r["length"])
            learned = [r["length"] for r in mine if r["mean"] >= CONVERGED]
            chance = [r["length"] for r in mine if r["mean"] <= CHANCE_BAND]
            between = [r for r in mine if CHANCE_BAND < r["mean"] < CONVERGED]
            parts = []
            if learned:
                parts.append(f"learned {_lengths_text(learned)}" if len(learned) < len(mine)
                             else "learned every length")
            if between:
                ended = ", ".join(f"{r['mean']:.2f} at T = {r['length']}" for r in between)
                parts.append(f"ended at {ended}")
            if chance:
                accuracies = ", ".join(f"{r['mean']:.2f}" for r in mine if r["length"] in chance)
                parts.append(f"stayed near chance at {_lengths_text(chance)} ({accuracies})")
            name = {"lstm": "The LSTM", "rnn": "The vanilla RNN"}.get(model, model)
            sentences.append(f"{name} ({encoding} digits) " + "; ".join(parts) + ".")
            studied = [r for r in mine if r["length"] <= STUDY_MAX_LENGTH]
            if model == "lstm" and studied:
                holds.append(all(r["mean"] >= CONVERGED for r in studied))
            elif model == "rnn" and any(r["length"] >= 15 for r in studied):
                holds.append(all(r["mean"] <= CHANCE_BAND for r in studied if r["length"] >= 15))
    models = {r["model"] for r in rows}
    if {"lstm", "rnn"} <= models and any(15 <= r["length"] <= STUDY_MAX_LENGTH for r in rows):
        where = (f"At the study's lengths (T <= {STUDY_MAX_LENGTH}), " if
                 any(r["length"] > STUDY_MAX_LENGTH for r in rows) else "")
        verdict = (f"{where}as the study found, only the LSTM still learns the longer palindromes."
                   if all(holds) else f"{where}this differs from the study's finding (the LSTM learns every "
                   "length; the vanilla RNN stays near chance from T = 15 on).")
        sentences.append(verdict[0].upper() + verdict[1:])
    return " ".join(sentences)


def write_results(results: dict, workdir: str) -> list[str]:
    """Writes results.json, summary.md and the figures into ``workdir``; returns their paths.

    In a multi-process run only process 0 writes (``parallel.is_writer``); the others return [].
    """
    if not parallel.is_writer():
        return []
    files.make_dir(workdir)
    written = [files.write_text(os.path.join(workdir, "results.json"), json.dumps(results)),
               files.write_text(os.path.join(workdir, "summary.md"), summary_markdown(results))]
    written += plots.save_all(results, summary_rows(results), workdir)
    return written

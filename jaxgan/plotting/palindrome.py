"""Part 1 figures from a results dict: curves per length, and accuracy and learning speed against length.

Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas (never pyplot, so no
backend is chosen for the process), and matplotlib is imported only when one is drawn.
"""

from __future__ import annotations

import os

import numpy as np

from jaxgan.plotting.canvas import new_figure
from jaxgan.runtime import files

COLORS = {"train": "tab:blue", "val": "tab:orange"}


def _curves(runs: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of one metric: ([epochs], [epochs])."""
    values = np.array([r[name] for r in runs])
    return values.mean(0), values.std(0)


def _band(mean: np.ndarray, std: np.ndarray, low: float, high: float | None = None):
    """The ±1 std band around ``mean``, clipped to the values the quantity can take ([0, 1] for an
    accuracy, >= 0 for a loss): a spread over seeds never draws an accuracy above 1."""
    return np.clip(mean - std, low, high), np.clip(mean + std, low, high)


def curves_figure(results: dict, length: int, encoding: str):
    """Accuracy (top) and loss (bottom), train and validation, one column per model."""

    models = results["config"]["models"]
    fig = new_figure(figsize=(4.2 * len(models), 6))
    axes = fig.subplots(2, len(models), squeeze=False, sharex=True, sharey="row")
    for col, model in enumerate(models):
        runs = [r for r in results["runs"]
                if r["model"] == model and r["length"] == length and r["encoding"] == encoding]
        epochs = np.arange(1, len(runs[0]["val_acc"]) + 1)
        for row, metric in enumerate(("acc", "loss")):
            ax = axes[row, col]
            for split in ("train", "val"):
                mean, std = _curves(runs, f"{split}_{metric}")
                ax.plot(epochs, mean, color=COLORS[split], label=split)
                ax.fill_between(epochs, *_band(mean, std, 0.0, 1.0 if metric == "acc" else None),
                                color=COLORS[split], alpha=0.25)
            ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy")
            ax.grid(alpha=0.3)
        seeds = f"{len(runs)} seeds" if len(runs) > 1 else "1 seed"
        axes[0, col].set_title(f"{model.upper()}, T={length} ({seeds})")
        axes[0, col].set_ylim(0, 1.02)
        axes[1, col].set_xlabel("epoch")
    axes[0, 0].legend(loc="lower right")
    band = ": mean ± std over seeds" if len(runs) > 1 else ""
    fig.suptitle(f"Palindromes of {length} input digits, {encoding} encoding{band}")
    fig.tight_layout()
    return fig


def length_figure(rows: list[dict], epochs: int, models: list[str], encodings: list[str]):
    """Against the input length T, one line per model and encoding: the final validation accuracy
    (left) and the first epoch at which a run reached 99% (right), each the mean over seeds with a
    ±1 std band (clipped to [0, 1] and to [1, epochs]). ``rows`` are ``summary.summary_rows``; a length
    where no seed reached 99% has no point on the right, and one where only some did says how many."""

    fig = new_figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for encoding in encodings:
        for model in models:
            mine = sorted((r for r in rows if r["model"] == model and r["encoding"] == encoding),
                          key=lambda r: r["length"])
            if not mine:
                continue
            lengths = np.array([r["length"] for r in mine])
            finals = [np.array(list(r["per_seed"].values())) for r in mine]
            style = "-" if encoding == "scalar" else "--"
            label = f"{model.upper()} ({encoding})"
            mean, std = np.array([f.mean() for f in finals]), np.array([f.std() for f in finals])
            line, = left.plot(lengths, mean, style, marker="o", label=label)
            left.fill_between(lengths, *_band(mean, std, 0.0, 1.0), color=line.get_color(), alpha=0.2)
            reached = [np.array([e for e in r["converged"] if e is not None], float) for r in mine]
            has = np.array([e.size > 0 for e in reached])
            if has.any():
                mean = np.array([e.mean() for e in reached if e.size])
                std = np.array([e.std() for e in reached if e.size])
                right.plot(lengths[has], mean, style, marker="o", color=line.get_color(), label=label)
                right.fill_between(lengths[has], *_band(mean, std, 1.0, epochs), color=line.get_color(),
                                   alpha=0.2)
                for t, e, r in zip(lengths[has], mean, (r for r, h in zip(mine, has, strict=True) if h),
                                   strict=True):
                    if len(r["converged"]) > sum(x is not None for x in r["converged"]):
                        count = sum(x is not None for x in r["converged"])
                        right.annotate(f"{count}/{len(r['converged'])}", (t, e), textcoords="offset points",
                                       xytext=(0, 6), ha="center", fontsize=7, color=line.get_color())
    left.axhline(0.1, color="grey", linewidth=0.8, linestyle=":", label="chance")
    left.set_ylabel("final validation accuracy")
    left.set_ylim(0, 1.05)
    right.set_ylabel("first epoch at 99% validation accuracy")
    right.set_ylim(0, epochs * 1.05)
    right.set_title("runs that never reach 99% are left out (n/N: how many did)", fontsize=8)
    for ax in (left, right):
        ax.set_xlabel("input length T")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # the right panel is empty when no run reached 99%
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_all(results: dict, rows: list[dict], workdir: str) -> list[str]:
    """Saves every Part 1 figure as PNG into ``workdir``; returns the paths. ``rows``: ``summary_rows``."""
    config = results["config"]
    paths = []
    lengths = sorted({r["length"] for r in results["runs"]})
    for encoding in config["encodings"]:
        for length in lengths:
            path = os.path.join(workdir, f"curves_T{length}_{encoding}.png")
            paths.append(files.save_figure(curves_figure(results, length, encoding), path, dpi=110))
    figure = length_figure(rows, config["epochs"], config["models"], config["encodings"])
    paths.append(files.save_figure(figure, os.path.join(workdir, "final_accuracy.png"), dpi=110))
    return paths

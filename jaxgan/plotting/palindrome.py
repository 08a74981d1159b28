"""Part 1 figures from results.json: curves per length, and final accuracy against length."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = {"train": "tab:blue", "val": "tab:orange"}


def _curves(runs: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of one metric: ([epochs], [epochs])."""
    values = np.array([r[name] for r in runs])
    return values.mean(0), values.std(0)


def curves_figure(results: dict, length: int, encoding: str):
    """Accuracy (top) and loss (bottom), train and validation, one column per model."""
    models = results["config"]["models"]
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6), squeeze=False,
                             sharex=True, sharey="row")
    for col, model in enumerate(models):
        runs = [r for r in results["runs"]
                if r["model"] == model and r["length"] == length and r["encoding"] == encoding]
        epochs = np.arange(1, len(runs[0]["val_acc"]) + 1)
        for row, metric in enumerate(("acc", "loss")):
            ax = axes[row, col]
            for split in ("train", "val"):
                mean, std = _curves(runs, f"{split}_{metric}")
                ax.plot(epochs, mean, color=COLORS[split], label=split)
                ax.fill_between(epochs, mean - std, mean + std, color=COLORS[split], alpha=0.25)
            ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy")
            ax.grid(alpha=0.3)
        axes[0, col].set_title(f"{model.upper()}, T={length} ({len(runs)} seeds)")
        axes[0, col].set_ylim(0, 1.02)
        axes[1, col].set_xlabel("epoch")
    axes[0, 0].legend(loc="lower right")
    fig.suptitle(f"Palindromes of {length} input digits, {encoding} encoding: mean ± std over seeds")
    fig.tight_layout()
    return fig


def final_accuracy_figure(results: dict):
    """Final validation accuracy against input length, one line per model and encoding."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lengths = sorted({r["length"] for r in results["runs"]})
    for encoding in results["config"]["encodings"]:
        for model in results["config"]["models"]:
            finals = np.array([[r["final_val_acc"] for r in results["runs"] if r["model"] == model
                                and r["encoding"] == encoding and r["length"] == t] for t in lengths])
            style = "-" if encoding == "scalar" else "--"
            ax.errorbar(lengths, finals.mean(1), yerr=finals.std(1), linestyle=style, marker="o",
                        capsize=3, label=f"{model.upper()} ({encoding})")
    ax.axhline(0.1, color="grey", linewidth=0.8, linestyle=":", label="chance")
    ax.set_xticks(lengths)
    ax.set_xlabel("input length T")
    ax.set_ylabel("final validation accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_all(results: dict, workdir: str) -> list[str]:
    """Saves every Part 1 figure as PNG into ``workdir``; returns the paths."""
    paths = []
    lengths = sorted({r["length"] for r in results["runs"]})
    for encoding in results["config"]["encodings"]:
        for length in lengths:
            paths.append(_save(curves_figure(results, length, encoding),
                               os.path.join(workdir, f"curves_T{length}_{encoding}.png")))
    paths.append(_save(final_accuracy_figure(results), os.path.join(workdir, "final_accuracy.png")))
    return paths


def _save(fig, path: str) -> str:
    """Saves and closes a figure through a temporary file."""
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path

"""GAN pictures: sample grids as PNG, the start/middle/end figure, loss curves, and score curves.

Matplotlib is imported inside the functions, and figures are ``matplotlib.figure.Figure``
objects drawn by the Agg canvas, never pyplot, so nothing here touches a display.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from typing import IO

import numpy as np

from jaxgan.plotting.canvas import image_module, matplotlib_module, new_figure
from jaxgan.runtime import files

# The value ranges images come in: the generator's tanh output (and training's scaled images), and raw pixels.
GENERATED = (-1.0, 1.0)
PIXELS = (0.0, 255.0)


def to_unit(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Images in ``value_range`` (low black, high white) as float32 in [0, 1].

    Raises ValueError when the images lie outside that range (beyond float rounding): raw 0..255
    pixels read as [-1, 1] would turn every digit into a white silhouette on grey, silently.
    """
    images = np.asarray(images, np.float32)
    low, high = value_range
    slack = 1e-3 * (high - low)
    if images.size and (images.min() < low - slack or images.max() > high + slack):
        raise ValueError(f"images span [{images.min():g}, {images.max():g}], outside the range "
                         f"[{low:g}, {high:g}] they are drawn in; pass the range they are in")
    return np.clip((images - low) / (high - low), 0.0, 1.0)


def grid_image(images: np.ndarray, nrow: int, pad: int = 2, pad_value: float = 1.0,
               value_range: tuple[float, float] = GENERATED) -> np.ndarray:
    """Tiles images [n, H, W] in ``value_range`` (default [-1, 1]) into one float
    [rows*(H+pad)+pad, nrow*(W+pad)+pad] in [0, 1].

    The white padding keeps tiles apart, on black digit backgrounds and on the grey of an
    untrained generator alike.
    """
    images = to_unit(images, value_range)
    n, height, width = images.shape
    rows = -(-n // nrow)
    canvas = np.full((rows * (height + pad) + pad, nrow * (width + pad) + pad), pad_value, np.float32)
    for i, image in enumerate(images):
        top, left = pad + (i // nrow) * (height + pad), pad + (i % nrow) * (width + pad)
        canvas[top:top + height, left:left + width] = image
    return canvas


def save_grid(images: np.ndarray, path: str, nrow: int | None = None, scale: int = 3,
              value_range: tuple[float, float] = GENERATED) -> None:
    """Writes images [n, H, W] in ``value_range`` (default [-1, 1]; ``PIXELS`` for raw 0..255 images) as
    one grayscale PNG grid (square by default), atomically: the range's low end black, its high end white.

    Each pixel becomes a ``scale`` x ``scale`` block, so a 28x28 digit is big enough to see.
    """
    files.write_atomic(path, grid_writer(images, nrow, scale, value_range), binary=True)


def grid_writer(images: np.ndarray, nrow: int | None = None, scale: int = 3,
                value_range: tuple[float, float] = GENERATED) -> Callable[[IO], None]:
    """The function that writes ``save_grid``'s PNG into an open binary file (for ``files.write_all``)."""
    image = image_module()

    nrow = nrow or int(np.ceil(np.sqrt(len(images))))
    grid = np.kron(grid_image(images, nrow, value_range=value_range), np.ones((scale, scale), np.float32))
    return lambda f: image.imsave(f, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png")


def grid_files(samples_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every ``step_XXXXXXX.png`` in ``samples_dir``, by step."""
    found = []
    for path in glob.glob(os.path.join(samples_dir, "step_*.png")):
        match = re.fullmatch(r"step_(\d+)\.png", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def progress_panels(grids: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(step, path, name) of the grids the progress figure shows: the first ("start"), the one nearest
    the middle step ("middle") and the last ("end"), each grid once (a short run has fewer than three)."""
    if not grids:
        return []
    middle = min(grids, key=lambda item: abs(item[0] - grids[-1][0] / 2))
    name = lambda grid: "end" if grid == grids[-1] else "start" if grid == grids[0] else "middle"
    return [(step, path, name((step, path))) for step, path in sorted({grids[0], middle, grids[-1]})]


def progress_figure(samples_dir: str, path: str) -> None:
    """Draws the grids at the start, the middle and the end of training side by side, as in the study."""
    image = image_module()

    panels = progress_panels(grid_files(samples_dir))
    if not panels:
        return
    fig = new_figure(figsize=(3.2 * len(panels), 3.6))
    for i, (step, grid_path, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(image.imread(grid_path), cmap="gray", interpolation="nearest")
        ax.set_title(f"{label}: step {step}")
        ax.axis("off")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)


def smoothed(steps: np.ndarray, values: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``values`` over consecutive blocks of ``len // points`` steps (at least 1), at the blocks'
    mean steps: a run of any length, one epoch or two hundred, gives a curve of at most ``points`` points.
    """
    window = max(1, len(values) // points)
    blocks = len(values) // window
    mean = lambda x: np.asarray(x[: blocks * window], np.float64).reshape(blocks, window).mean(1)
    return mean(steps), mean(values)


def loss_figure(metrics_path: str, path: str) -> None:
    """Plots the losses and D(x), D(G(z)) against the step from a metrics.jsonl file (running means)."""
    records = files.read_jsonl(metrics_path)
    if not records:
        return
    steps = np.asarray([r["step"] for r in records], np.float64)

    def curve(name):
        """The running mean of one metric: (steps, values)."""
        return smoothed(steps, np.asarray([r[name] for r in records], np.float64))

    fig = new_figure(figsize=(10, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(*curve("d_loss"), label="discriminator")
    ax.plot(*curve("g_loss"), label="generator")
    ax.set_xlabel("step")
    ax.set_ylabel("BCE loss")
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(*curve("d_real"), label="D(x)")
    ax.plot(*curve("d_fake"), label="D(G(z))")
    ax.set_xlabel("step")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)


def scores_figure(scores_path: str, path: str) -> None:
    """Plots Inception Score and FID against the step from a scores.jsonl file, raw vs EMA weights."""
    matplotlib_module()  # before any matplotlib submodule (see jaxgan.plotting.canvas)
    from matplotlib.ticker import FuncFormatter

    records = files.read_jsonl(scores_path)
    if not records:
        return
    steps = [r["step"] for r in records]
    fig = new_figure(figsize=(10, 3.6))
    panels = (("inception_score", "Inception Score (higher is better)"), ("fid", "FID (lower is better)"))
    for i, (name, label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        plotted = []
        for weights, style, text in (("raw", "o-", "raw weights"), ("ema", "s--", "EMA weights")):
            key = f"{name}_{weights}"
            if all(key in r for r in records):
                # A score that was not finite is null in the file: a gap in the curve, not a point.
                points = [(s, r[key]) for s, r in zip(steps, records, strict=True) if r[key] is not None]
                ax.plot([s for s, _ in points], [v for _, v in points], style, label=text)
                plotted.extend(v for _, v in points)
        if name == "fid" and plotted and min(plotted) > 0:
            ax.set_yscale("log")  # FID falls by orders of magnitude early in training
            plain = FuncFormatter(lambda value, _: f"{value:g}")
            ax.yaxis.set_major_formatter(plain)
            if max(plotted) < 10 * min(plotted):  # within one decade the minor ticks need numbers too
                ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"Scores of {records[0]['num_samples']} samples at each checkpoint")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)

"""The interpolation figure: one row per latent pair, each image titled with the classifier's call.

Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas (never pyplot), imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import numpy as np

from jaxgan.plotting.canvas import new_figure
from jaxgan.plotting.gan import GENERATED, to_unit
from jaxgan.runtime import files

DPI = 100
# Matplotlib's Agg canvas refuses an image this many pixels wide or tall (ValueError at savefig).
_AGG_LIMIT = 2**23


def figure_inches(num_rows: int, num_cols: int, title: str = "") -> tuple[float, float]:
    """(width, height) in inches of the figure of ``num_rows`` rows of ``num_cols`` images."""
    return 1.1 * num_cols, 1.3 * num_rows + (0.4 if title else 0.0)


def too_large(num_rows: int, num_cols: int) -> str | None:
    """Why a figure of that many rows and images per row cannot be drawn (a phrase), or None if it can."""
    width, height = (round(inches * DPI) for inches in figure_inches(num_rows, num_cols, title="t"))
    if max(width, height) < _AGG_LIMIT:
        return None
    return (f"{num_rows} rows of {num_cols} images make a figure of {width} x {height} pixels, and "
            f"matplotlib draws at most {_AGG_LIMIT - 1} in each direction")


def rows_figure(images: np.ndarray, probs: np.ndarray | None, path: str, title: str = "") -> str:
    """Saves images [P, S, 28, 28] in [-1, 1] as P rows of S, titled "class (conf.)" from probs [P, S, C].

    Without ``probs`` each image is titled with its path fraction t. Written atomically; returns ``path``.
    """
    return files.write_atomic(path, rows_writer(images, probs, title), binary=True)


def rows_writer(images: np.ndarray, probs: np.ndarray | None, title: str = "") -> Callable[[IO], None]:
    """The function that writes ``rows_figure``'s PNG into an open binary file (for ``files.write_all``)."""

    unit = to_unit(images, GENERATED)  # -1 black, 1 white; raises on images in another range
    num_rows, num_cols = unit.shape[:2]
    fig = new_figure(figsize=figure_inches(num_rows, num_cols, title))
    for r in range(num_rows):
        for c in range(num_cols):
            ax = fig.add_subplot(num_rows, num_cols, r * num_cols + c + 1)
            ax.imshow(unit[r, c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if probs is not None:
                label = f"{int(probs[r, c].argmax())} ({float(probs[r, c].max()):.2f})"
            else:
                label = f"t={c / (num_cols - 1):.2f}"
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return lambda f: fig.savefig(f, format="png", dpi=DPI)

"""Part 1's figures draw their ±1 std bands only where the quantity can be: an accuracy in [0, 1]."""

from __future__ import annotations

import numpy as np

from jaxgan.plotting.palindrome import curves_figure, length_figure


def _band_limits(ax) -> tuple[float, float]:
    """The lowest and highest y of every filled band on ``ax``."""
    ys = np.concatenate([path.vertices[:, 1] for band in ax.collections for path in band.get_paths()])
    return float(ys.min()), float(ys.max())


def test_the_accuracy_bands_stay_within_0_and_1():
    # Seeds ending at 1.0, 0.6 and 1.0: mean 0.87, std 0.19, so an unclipped band reaches 1.06.
    rows = [{"model": "lstm", "encoding": "scalar", "length": t, "per_seed": {"0": 1.0, "1": 0.6, "2": 1.0},
             "converged": [95, None, 99]} for t in (5, 10)]
    left, right = length_figure(rows, epochs=100, models=["lstm"], encodings=["scalar"]).axes
    low, high = _band_limits(left)
    assert high == 1.0 and low > 0.6
    assert _band_limits(right)[1] <= 100

    runs = [{"model": "rnn", "length": 5, "encoding": "scalar",
             "train_acc": [0.1, 0.5, 1.0, 1.0], "val_acc": [0.0, 0.5, accuracy, 1.0],
             "train_loss": [2.3, 1.0, 0.1, 0.0], "val_loss": [2.3, 1.2, loss, 0.0]}
            for accuracy, loss in ((1.0, 0.0), (0.2, 2.0))]
    figure = curves_figure({"config": {"models": ["rnn"]}, "runs": runs}, 5, "scalar")
    accuracy_axes, loss_axes = figure.axes
    assert _band_limits(accuracy_axes) == (0.0, 1.0)
    assert _band_limits(loss_axes)[0] == 0.0

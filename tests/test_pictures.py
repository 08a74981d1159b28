"""Every image jaxgan writes maps its data's range to the intended grey levels, whatever the backend.

Each writer is given images of known values, its PNG is read back, and the grey levels are
compared: the range's low end black, its high end white, its middle mid-grey. Images outside the
range a writer is told they are in are refused, not drawn as a silhouette. The figures are drawn
in a process whose MPLBACKEND is Jupyter's inline backend, which matplotlib refuses at import where
matplotlib-inline is not installed: jaxgan draws files on the Agg canvas, never through that backend.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from jaxgan.plotting import gan as gan_plots
from jaxgan.plotting.canvas import image_module
from jaxgan.plotting.interpolation import rows_figure

REPO = pathlib.Path(__file__).resolve().parents[1]


def _grey(path: pathlib.Path) -> np.ndarray:
    """A PNG read back as grey levels in [0, 1] [H, W] (the mean of its colour channels)."""
    pixels = image_module().imread(str(path))
    return pixels[..., :3].mean(-1) if pixels.ndim == 3 else pixels


def _tiles(low: float, high: float) -> np.ndarray:
    """Three 28x28 images of the range's low end, middle and high end."""
    return np.stack([np.full((28, 28), v, np.float32) for v in (low, (low + high) / 2, high)])


@pytest.mark.parametrize("value_range", [gan_plots.GENERATED, gan_plots.PIXELS])
def test_a_grid_maps_its_range_to_black_grey_and_white(value_range, tmp_path):
    path = tmp_path / "grid.png"
    gan_plots.save_grid(_tiles(*value_range), str(path), nrow=3, scale=1, value_range=value_range)
    grey = _grey(path)
    pad = 2  # the white padding around each tile
    tile = lambda i: grey[pad:pad + 28, pad + i * 30: pad + i * 30 + 28]
    assert np.allclose(tile(0), 0.0, atol=1 / 255)
    assert np.allclose(tile(1), 0.5, atol=1 / 255)
    assert np.allclose(tile(2), 1.0, atol=1 / 255)


def test_raw_pixels_given_as_generated_images_are_refused(tmp_path):
    images = np.full((4, 28, 28), 200, np.uint8)
    with pytest.raises(ValueError, match=r"images span \[200, 200\], outside the range \[-1, 1\]"):
        gan_plots.save_grid(images, str(tmp_path / "grid.png"))
    assert not list(tmp_path.iterdir())


def test_the_real_images_grid_shows_digits_as_they_are(tmp_path):
    """``reproduce``'s real.png: uint8 digits, white strokes on black, exactly their own grey levels."""
    from jaxgan.data.images import load_images

    images = load_images("digits").images[:25]
    path = tmp_path / "real.png"
    gan_plots.save_grid(images, str(path), value_range=gan_plots.PIXELS, scale=1)
    grey = _grey(path)
    first = grey[2:30, 2:30]
    assert np.allclose(first, images[0] / 255.0, atol=1 / 255)


def test_an_interpolation_row_maps_minus_one_to_black_and_one_to_white(tmp_path):
    path = tmp_path / "rows.png"
    rows_figure(_tiles(-1.0, 1.0)[None], None, str(path))
    grey = _grey(path)
    # The figure's background is white; the three images bring black and mid-grey (imshow of the exact
    # values, nearest neighbour), so both levels must appear in large patches.
    assert (np.abs(grey - 0.0) < 2 / 255).sum() > 500
    assert (np.abs(grey - 0.5) < 2 / 255).sum() > 500
    with pytest.raises(ValueError, match="outside the range"):
        rows_figure(np.full((1, 3, 28, 28), 255.0), None, str(tmp_path / "bad.png"))
    assert not (tmp_path / "bad.png").exists()


def test_the_progress_figure_shows_the_grids_grey_levels(tmp_path):
    """progress.png redraws the saved grids as they are: their black and mid-grey stay black and mid-grey."""
    samples = tmp_path / "samples"
    samples.mkdir()
    for step in (0, 5, 10):
        gan_plots.save_grid(_tiles(-1.0, 1.0), str(samples / f"step_{step:07d}.png"), nrow=3)
    gan_plots.progress_figure(str(samples), str(tmp_path / "progress.png"))
    grey = _grey(tmp_path / "progress.png")
    assert (np.abs(grey - 0.0) < 2 / 255).sum() > 500
    assert (np.abs(grey - 0.5) < 3 / 255).sum() > 500


DRAW_EVERYTHING = """
import json, pathlib, sys
import numpy as np
from jaxgan.plotting import gan, interpolation, palindrome
out = pathlib.Path(sys.argv[1])
images = np.linspace(-1, 1, 25 * 784, dtype=np.float32).reshape(25, 28, 28)
(out / "samples").mkdir()
for step in (0, 5, 10):
    gan.save_grid(images, str(out / "samples" / f"step_{step:07d}.png"))
gan.progress_figure(str(out / "samples"), str(out / "progress.png"))
(out / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "d_loss": 1.0, "g_loss": 1.0, "d_real": 0.5,
                                                       "d_fake": 0.5}) + "\\n" for s in range(1, 11)))
gan.loss_figure(str(out / "metrics.jsonl"), str(out / "losses.png"))
(out / "scores.jsonl").write_text(json.dumps({"step": 10, "num_samples": 10, "inception_score_raw": 2.0,
                                              "fid_raw": 50.0}) + "\\n")
gan.scores_figure(str(out / "scores.jsonl"), str(out / "scores.png"))
interpolation.rows_figure(images[:6].reshape(2, 3, 28, 28), None, str(out / "rows.png"))
"""


def test_figures_do_not_depend_on_the_callers_matplotlib_backend(tmp_path):
    """A backend matplotlib cannot load (MPLBACKEND from a notebook) does not stop a figure."""
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", DRAW_EVERYTHING, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("progress.png", "losses.png", "scores.png", "rows.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "Traceback" not in done.stderr

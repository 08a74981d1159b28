"""jaxgan: LSTM vs RNN on palindromes, and an MLP GAN on MNIST, in functional JAX.

The names a user of the library reaches for, at the top of the package (docs/api.md shows each in use):

- settings (``jaxgan.configs``): ``PalindromeConfig``, ``GANConfig``, ``InterpolationConfig``,
  ``ClassifierConfig``, frozen dataclasses (``dataclasses.replace`` makes a variant);
- images (``jaxgan.data.images``): ``load_images(source, split=...) -> ImageSet``, images uint8
  [N, 28, 28] and labels int32 [N];
- training, each ``(config, workdir, ...) -> dict`` in one run folder: ``train_palindrome``,
  ``train_gan``, ``train_classifier`` (the ``train_and_evaluate`` of ``jaxgan.palindrome.train``,
  ``jaxgan.gan.train``, ``jaxgan.classifier.train``); their ``progress`` callback gets ``Progress``
  (``jaxgan.runtime.loop``);
- Part 1's results (``jaxgan.palindrome.summary``): ``summary_markdown``, ``finding``;
- Part 2 from a checkpoint: ``restore_generator`` (a run folder -> generator variables, record) and
  ``sample`` (variables, key, n -> float32 [n, 28, 28] in [-1, 1]) of ``jaxgan.gan.generate``;
  ``decode`` (variables, latents [n, D] -> images) and ``latent_dim_of`` of ``jaxgan.models.gan``;
  ``restore_classifier`` and ``load_classify_fn`` (images -> probs [n, 10]) of
  ``jaxgan.classifier.restore``; ``interpolation_rows`` of ``jaxgan.gan.interpolate``;
- pictures: ``save_grid`` (``jaxgan.plotting.gan``: images -> a PNG grid) and ``rows_figure``
  (``jaxgan.plotting.interpolation``: the interpolation figure);
- ``UserError`` (``jaxgan.errors``), the one exception for bad input.

They are imported on first use (PEP 562's module ``__getattr__``), so ``import jaxgan`` imports
neither JAX nor matplotlib, and the scripts, which import the modules they need directly, start
no slower for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from jaxgan.errors import UserError

# Public name -> (module, attribute in it). Imported when first asked for, then kept in globals().
_LAZY = {
    "PalindromeConfig": ("jaxgan.configs.palindrome", "PalindromeConfig"),
    "GANConfig": ("jaxgan.configs.gan", "GANConfig"),
    "InterpolationConfig": ("jaxgan.configs.gan", "InterpolationConfig"),
    "ClassifierConfig": ("jaxgan.configs.classifier", "ClassifierConfig"),
    "ImageSet": ("jaxgan.data.images", "ImageSet"),
    "load_images": ("jaxgan.data.images", "load_images"),
    "train_palindrome": ("jaxgan.palindrome.train", "train_and_evaluate"),
    "train_gan": ("jaxgan.gan.train", "train_and_evaluate"),
    "train_classifier": ("jaxgan.classifier.train", "train_and_evaluate"),
    "Progress": ("jaxgan.runtime.loop", "Progress"),
    "summary_markdown": ("jaxgan.palindrome.summary", "summary_markdown"),
    "finding": ("jaxgan.palindrome.summary", "finding"),
    "restore_generator": ("jaxgan.gan.generate", "restore_generator"),
    "sample": ("jaxgan.gan.generate", "sample"),
    "decode": ("jaxgan.models.gan", "decode"),
    "latent_dim_of": ("jaxgan.models.gan", "latent_dim_of"),
    "restore_classifier": ("jaxgan.classifier.restore", "restore_classifier"),
    "load_classify_fn": ("jaxgan.classifier.restore", "load_classify_fn"),
    "interpolation_rows": ("jaxgan.gan.interpolate", "interpolation_rows"),
    "save_grid": ("jaxgan.plotting.gan", "save_grid"),
    "rows_figure": ("jaxgan.plotting.interpolation", "rows_figure"),
}

# Written out (not built from _LAZY) so linters see every public name; a test holds it to _LAZY.
__all__ = ["ClassifierConfig", "GANConfig", "ImageSet", "InterpolationConfig", "PalindromeConfig",
           "Progress", "UserError", "decode", "finding", "interpolation_rows", "latent_dim_of",
           "load_classify_fn", "load_images", "restore_classifier", "restore_generator", "rows_figure",
           "sample", "save_grid", "summary_markdown", "train_classifier", "train_gan", "train_palindrome"]

if TYPE_CHECKING:  # the same names for type checkers and editors; at run time _LAZY imports them
    from jaxgan.classifier.restore import load_classify_fn, restore_classifier
    from jaxgan.classifier.train import train_and_evaluate as train_classifier
    from jaxgan.configs.classifier import ClassifierConfig
    from jaxgan.configs.gan import GANConfig, InterpolationConfig
    from jaxgan.configs.palindrome import PalindromeConfig
    from jaxgan.data.images import ImageSet, load_images
    from jaxgan.gan.generate import restore_generator, sample
    from jaxgan.gan.interpolate import interpolation_rows
    from jaxgan.gan.train import train_and_evaluate as train_gan
    from jaxgan.models.gan import decode, latent_dim_of
    from jaxgan.palindrome.summary import finding, summary_markdown
    from jaxgan.palindrome.train import train_and_evaluate as train_palindrome
    from jaxgan.plotting.gan import save_grid
    from jaxgan.plotting.interpolation import rows_figure
    from jaxgan.runtime.loop import Progress


def __getattr__(name: str):
    """Imports a public name of ``_LAZY`` the first time it is asked for (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # asked once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    """The module's names and the public ones not imported yet (for tab completion)."""
    return sorted({*globals(), *__all__})

"""The digit classifier's settings: the judge of GAN samples (its held-out accuracy, IS and FID features).

    python -m experiments.train_classifier --dataset digits

trains it offline in about a minute on a CPU; expected held-out accuracy about 96% on the 360
digits of scikit-learn's test part less its own hold-out (98.9% on the 2,000 held-out images of
the MNIST test split with ``--dataset idx:DIR --split test``). ``get_config()`` returns the defaults.
"""

from __future__ import annotations

import dataclasses

from jaxgan.configs.base import INT32_MAX, STEP_NOTE, check, seed_setting, setting

KIND = "classifier"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """One classifier run; hashable so jitted functions take it as a static argument."""

    epochs: int = setting(20, "passes over the training part", minimum=1, maximum=INT32_MAX, note=STEP_NOTE)
    batch_size: int = setting(128, "images per Adam step", minimum=1)
    learning_rate: float = setting(1e-3, "Adam learning rate (cosine-decayed to 0 over the run)",
                                   flag="--lr", aliases=("--learning-rate",), above=0.0)
    holdout_fraction: float = setting(
        0.2, "fraction of the images held out for evaluation, drawn from the seed; 0.2 of the 10,000 MNIST "
        "test images trains on 8,000 and holds out 2,000", flag="--holdout", above=0.0, below=1.0)
    seed: int = seed_setting("seed of the split, the initialisation, shuffling and dropout")
    conv1: int = setting(32, "channels of the first convolution", minimum=1)
    conv2: int = setting(64, "channels of the second convolution", minimum=1)
    hidden: int = setting(128, "units of the feature layer (the features FID compares)", minimum=1)
    dropout: float = setting(0.25, "dropout rate before the output layer", minimum=0.0, below=1.0)
    max_shift: int = setting(2, "training images move by up to this many pixels each way (0: none)",
                             minimum=0)
    dataset: str = setting("auto", "what was asked for (a --dataset value); the loaded source is logged too",
                           flag=None)
    split: str = setting("train", "the split of the dataset", flag=None)

    def validate(self) -> None:
        """Raises one UserError for the first setting that is out of range."""
        check(self)


def get_config() -> ClassifierConfig:
    """The project's classifier settings."""
    return ClassifierConfig()

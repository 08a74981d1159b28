"""Part 2's settings: the study's MLP GAN, and the interpolation drawn from a trained one.

    python -m experiments.train_gan --dataset digits --epochs 30

trains the study's GAN (Adam lr 2e-4, batch 64, latent 100) on scikit-learn's digits, offline,
in a few minutes on a CPU: the last grid in ``runs/gan/samples/`` shows digit-like shapes. The
study's own run is ``--dataset mnist`` (after ``python -m experiments.prepare_mnist``) with the
default 200 epochs. ``get_config()`` returns the defaults.

    python -m experiments.interpolate --gan-dir runs/gan

draws ``InterpolationConfig``'s rows from the newest checkpoint of that run.
"""

from __future__ import annotations

import dataclasses

from jaxgan.configs.base import INT32_MAX, STEP_NOTE, check, check_total_steps, seed_setting, setting
from jaxgan.errors import UserError
from jaxgan.models.gan import DISC_FEATURES, GEN_FEATURES

KIND = "gan"
INTERPOLATION_MODES = ("linear", "slerp")
D_LOSSES = ("mean", "sum")
GRID_MODES = ("train", "eval")
MAX_LATENT = 65536  # far above the study's 100; a mistyped size is refused before anything is allocated
# The interpolation figure draws each image as its own matplotlib Axes, which costs time and memory.
MAX_FIGURE_IMAGES = 10_000


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """The run's settings (the study's by default)."""

    latent_dim: int = setting(100, "size of the generator's noise input", minimum=1, maximum=MAX_LATENT,
                              note="the noise of every batch and the generator's first layer grow with it")
    gen_features: tuple[int, ...] = setting(
        GEN_FEATURES, "widths of the generator's hidden layers, from the noise on (BatchNorm after all but "
        "the first); its output layer is always 784, a 28x28 image", minimum=1, item="generator width",
        cli={"metavar": "WIDTH"})
    disc_features: tuple[int, ...] = setting(
        DISC_FEATURES, "widths of the discriminator's hidden layers, from the image on; its output layer is "
        "always 1", minimum=1, item="discriminator width", cli={"metavar": "WIDTH"})
    learning_rate: float = setting(2e-4, "Adam learning rate of both networks", flag="--lr",
                                   aliases=("--learning-rate",), above=0.0)
    b1: float = setting(0.5, "Adam beta1; the study used PyTorch's default 0.9, which after 2,500 steps on "
                        "MNIST still draws blobs (FID ~560 against ~210 with 0.5; see the README)",
                        minimum=0.0, below=1.0)
    b2: float = setting(0.999, "Adam beta2", minimum=0.0, below=1.0)
    # BatchNorm's statistics are over the whole (global) batch; over one example they are degenerate.
    batch_size: int = setting(64, "real and fake images per step (at least 2: BatchNorm's statistics are "
                              "over the batch); the last partial batch of each epoch is dropped", minimum=2)
    epochs: int = setting(200, "total passes over the images; a resumed run continues up to this many",
                          minimum=1, maximum=INT32_MAX, note=STEP_NOTE, resume=False)
    sample_every: int = setting(500, "save a 5x5 grid of the fixed noise every this many steps, and at the "
                                "end", minimum=1, maximum=INT32_MAX, resume=False,
                                note="it is compared with the int32 step counter on the device")
    checkpoint_every: int = setting(5, "save a checkpoint every this many epochs, and at the end", minimum=1,
                                    resume=False)
    keep_checkpoints: int = setting(3, "how many of the newest checkpoints to keep", minimum=1, resume=False)
    seed: int = seed_setting("seed of the initialisation, shuffling, noise and the fixed sample noise")
    d_loss: str = setting("mean", "the discriminator's loss: the mean of its two BCE terms (real, fake), as "
                          "the study's code, or their sum", choices=D_LOSSES, legacy="sum")
    grid_mode: str = setting("train", "how the 5x5 sample grids are drawn: train = with the batch statistics "
                             "of the 25 grid images, as the study drew them; eval = with the running "
                             "averages", choices=GRID_MODES, legacy="eval", resume=False)
    ema_decay: float = setting(0.999, "decay of the exponential moving average of the generator's weights, "
                               "kept beside them, warmed up as min(decay, n / (n + 9)) at update n so that a "
                               "short run averages its last tenth; 0 disables it", minimum=0.0, below=1.0)

    def validate(self) -> None:
        """Raises one UserError for the first setting that is out of range (in float32 where it is used)."""
        if self.batch_size == 1:  # PyTorch's BatchNorm1d refuses it in training too
            raise UserError("the batch size must be at least 2: the generator's BatchNorm normalises over "
                            "the batch, and over a single example it outputs its bias whatever the noise")
        check(self)


@dataclasses.dataclass(frozen=True)
class InterpolationConfig:
    """Rows of images between latent pairs of a trained generator (the study's Task 3)."""

    pairs: int = setting(4, "rows", minimum=1)
    steps: int = setting(7, "images between the two ends of a row", minimum=1)
    mode: str = setting("linear", "straight line or great circle between the ends",
                        choices=INTERPOLATION_MODES)
    threshold: float = setting(0.9, "confidence both ends need", minimum=0.0, maximum=1.0)
    seed: int = seed_setting("seed of the latent pairs")

    def validate(self) -> None:
        """Raises one UserError for the first setting that is out of range."""
        check(self)


def get_config() -> GANConfig:
    """The study's GAN settings."""
    return GANConfig()


def check_batch(batch_size: int, num_images: int, epochs: int | None = None) -> None:
    """Raises UserError when a batch does not fit the image set (every step takes a full batch), or when
    ``epochs`` of it would pass the int32 step counter."""
    if batch_size > num_images:
        raise UserError(f"the batch size {batch_size} is larger than the {num_images} images of the data set")
    if epochs is not None:
        check_total_steps(epochs, num_images // batch_size, f"{num_images} images in batches of {batch_size}")

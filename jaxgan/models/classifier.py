"""A small CNN that judges 28x28 digits: its logits classify, its penultimate features feed FID.

Architecture (defaults): conv 3x3x32 stride 2, ReLU -> conv 3x3x64 stride 2, ReLU -> dense 128,
ReLU (the features) -> dropout -> dense 10 (the logits); 421,642 parameters.

Two choices are about speed on CPU, where CI runs. Strided convolutions replace max-pooling
(the max-pool gradient made a step ~9x slower). And each convolution is written as its 3x3
patches times a dense kernel [9 * C_in, C_out] (the same function and parameter count as
``nn.Conv``): XLA:CPU runs convolutions inside a loop body ~7x slower than outside one
(jax-ml/jax#12868), and the training epoch is a ``lax.scan``; slices and a matmul are not.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_CLASSES = 10
IMAGE_SIZE = 28
PREDICT_BATCH = 500  # images per batch of an inference pass (lax.map's batch_size)


def patches_3x3_stride2(x: jax.Array) -> jax.Array:
    """3x3 windows of a stride-2 SAME convolution: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 9C]."""
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = -(-height // 2), -(-width // 2)
    # SAME padding as XLA computes it: total (out - 1) * stride + window - size, the extra on the end.
    pad_h, pad_w = max((out_h - 1) * 2 + 3 - height, 0), max((out_w - 1) * 2 + 3 - width, 0)
    x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    windows = [x[:, i : i + 2 * out_h - 1 : 2, j : j + 2 * out_w - 1 : 2, :]
               for i in range(3) for j in range(3)]
    return jnp.concatenate(windows, axis=-1)


class Classifier(nn.Module):
    """Digit CNN: images [B, 28, 28] (or [B, 784]) float in [-1, 1] -> logits [B, 10].

    Dropout is the only randomness; with ``train=True`` it needs an explicit ``"dropout"`` rng.
    """

    conv1: int = 32
    conv2: int = 64
    hidden: int = 128
    dropout: float = 0.5

    def setup(self):
        self.conv_a = nn.Dense(self.conv1, name="conv1")  # kernel [9 * 1, conv1]
        self.conv_b = nn.Dense(self.conv2, name="conv2")  # kernel [9 * conv1, conv2]
        self.dense = nn.Dense(self.hidden, name="hidden")
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Dense(NUM_CLASSES, name="logits")

    def features(self, images: jax.Array) -> jax.Array:
        """Penultimate features [B, hidden] (after ReLU, before dropout, so they are deterministic)."""
        x = jnp.reshape(images, (-1, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(jnp.float32)
        x = nn.relu(self.conv_a(patches_3x3_stride2(x)))  # [B, 14, 14, conv1]
        x = nn.relu(self.conv_b(patches_3x3_stride2(x)))  # [B, 7, 7, conv2]
        return nn.relu(self.dense(jnp.reshape(x, (x.shape[0], -1))))

    def logits_and_features(self, images: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Both outputs of one forward pass: (logits [B, 10], features [B, hidden])."""
        features = self.features(images)
        logits = self.head(self.drop(features, deterministic=not train))
        return logits, features

    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        """Logits [B, 10] for images [B, 28, 28] in [-1, 1]."""
        return self.logits_and_features(images, train=train)[0]


def classifier_for(variables: Mapping[str, Any], dropout: float = 0.0) -> Classifier:
    """The Classifier whose widths match ``variables`` (read from the kernel shapes)."""
    params = variables["params"]
    try:
        return Classifier(conv1=params["conv1"]["kernel"].shape[-1],
                          conv2=params["conv2"]["kernel"].shape[-1],
                          hidden=params["hidden"]["kernel"].shape[-1], dropout=dropout)
    except (KeyError, TypeError) as err:
        raise ValueError(f"these variables are not a digit classifier's (missing {err})") from None


# Inference: the forward passes that judge images, for any saved classifier.


def to_model_input(images: jax.Array) -> jax.Array:
    """uint8 [..., 28, 28] in 0..255 -> float32 in [-1, 1]; float input is taken as already in [-1, 1]."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images.astype(jnp.float32)


def _forward(variables: Mapping[str, Any], images: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """(logits [N, 10], features [N, F]) of images [N, 28, 28] or [N, 784], ``batch_size`` at a time."""
    model = classifier_for(variables)
    images = to_model_input(jnp.reshape(images, (images.shape[0], IMAGE_SIZE, IMAGE_SIZE)))

    def one(image):
        """Logits [10] and features [F] of one image (``lax.map`` batches it)."""
        logits, features = model.apply(variables, image[None], method=Classifier.logits_and_features)
        return logits[0], features[0]

    return jax.lax.map(one, images, batch_size=min(batch_size, images.shape[0]))


@functools.partial(jax.jit, static_argnames=("batch_size",))
def predict(variables: Mapping[str, Any], images: jax.Array,
            batch_size: int = PREDICT_BATCH) -> tuple[jax.Array, jax.Array]:
    """Class probabilities [N, 10] and penultimate features [N, F] for images [N, 28, 28] (or [N, 784]).

    Images are uint8 in 0..255 or float in [-1, 1] (a generator's tanh output). Pure and jitted,
    so it also runs inside a caller's jit.
    """
    logits, features = _forward(variables, images, batch_size)
    return jax.nn.softmax(logits), features


def predict_logits(variables: Mapping[str, Any], images: jax.Array,
                   batch_size: int = PREDICT_BATCH) -> jax.Array:
    """Logits [N, 10] of images [N, 28, 28] (uint8, or float in [-1, 1]), evaluation mode."""
    return _forward(variables, images, batch_size)[0]

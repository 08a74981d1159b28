"""The digit classifier, the pure parts: its held-out split, a pure Adam step, and a scanned epoch.

``train_epoch`` is one jitted program: it shuffles, runs every batch inside ``lax.scan`` and
scores the held-out part; the host loop around it is ``jaxgan.classifier.train``. The split is
drawn from the run's ``split_key``: a fraction ``holdout_fraction`` of the images (default 0.2,
so 2,000 of the 10,000 MNIST test images, with the other 8,000 for training) is never trained on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxgan.configs.base import check_total_steps
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.errors import UserError
from jaxgan.models.classifier import Classifier, predict_logits, to_model_input
from jaxgan.scores import MIN_SCORE_SAMPLES


def model_of(config: ClassifierConfig) -> Classifier:
    """The CNN ``config`` describes."""
    return Classifier(conv1=config.conv1, conv2=config.conv2, hidden=config.hidden, dropout=config.dropout)


class TrainState(struct.PyTreeNode):
    """Parameters, Adam state and step count; no static fields, so Orbax saves it as a plain tree."""

    params: dict
    opt_state: optax.OptState
    step: jax.Array  # int32 []


class ClassifierData(struct.PyTreeNode):
    """All images on the device: images uint8 [N, 28, 28], labels int32 [N], and the split's indices."""

    images: jax.Array
    labels: jax.Array
    train_idx: jax.Array  # int32 [N_train]
    holdout_idx: jax.Array  # int32 [N_holdout]


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, each for one job: the held-out split, initialisation, training."""
    split_key, init_key, train_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {"split": split_key, "init": init_key, "train": train_key}


def holdout_size(n: int, holdout_fraction: float) -> int:
    """How many of ``n`` images are held out (at least one, and at least one left to train on)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise UserError(f"the held-out fraction must lie strictly between 0 and 1, not {holdout_fraction}")
    size = round(n * holdout_fraction)
    if size < 1 or size > n - 1:
        raise UserError(f"a held-out fraction of {holdout_fraction} of {n} images leaves an empty part")
    return size


def check_split(n: int, config: ClassifierConfig) -> tuple[int, int]:
    """(training, held-out) sizes of a run on ``n`` images; UserError when the split is degenerate.

    The training part must hold a batch, and the held-out part the fewest images the scores are
    computed on (a GAN is scored against the held-out features, ``jaxgan.scores``).
    """
    held = holdout_size(n, config.holdout_fraction)
    if n - held < config.batch_size:
        raise UserError(f"the batch size {config.batch_size} is larger than the {n - held} training images "
                        f"({n} images less {held} held out)")
    if held < MIN_SCORE_SAMPLES:
        raise UserError(f"a held-out fraction of {config.holdout_fraction} of {n} images holds out {held}, "
                        f"fewer than the {MIN_SCORE_SAMPLES} images the scores need; hold out more")
    check_total_steps(config.epochs, (n - held) // config.batch_size,
                      f"{n - held} training images in batches of {config.batch_size}")
    return n - held, held


def split_holdout(n: int, holdout_fraction: float, split_key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``range(n)``: (train indices [n - h], held-out indices [h]), both sorted."""
    size = holdout_size(n, holdout_fraction)
    order = np.asarray(jax.random.permutation(split_key, n))
    return np.sort(order[size:]).astype(np.int32), np.sort(order[:size]).astype(np.int32)


def holdout_indices(n: int, config: ClassifierConfig) -> tuple[np.ndarray, np.ndarray]:
    """The split a run with ``config`` uses on ``n`` images: (train [n - h], held-out [h])."""
    return split_holdout(n, config.holdout_fraction, run_keys(config.seed)["split"])


def make_optimizer(config: ClassifierConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam with a cosine decay to zero over ``total_steps``.

    The decay lets the last epoch settle instead of ending wherever the last noisy step left it
    (with a constant rate the held-out accuracy wandered by +-0.4% between epochs). The schedule
    reads its step from the Adam state, so a resumed run continues it exactly.
    """
    return optax.adam(optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1)))


@functools.partial(jax.jit, static_argnames=("config",))
def init_state(init_key: jax.Array, config: ClassifierConfig) -> TrainState:
    """Fresh parameters (from ``init_key``) and Adam state (whose structure is the same for any length)."""
    params = model_of(config).init(init_key, jnp.zeros((1, 28, 28), jnp.float32), train=False)["params"]
    return TrainState(params=params, opt_state=make_optimizer(config, 1).init(params),
                      step=jnp.zeros((), jnp.int32))


def train_step(state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array,
               config: ClassifierConfig, total_steps: int) -> tuple[TrainState, dict]:
    """One Adam step on batch (images uint8 [B, 28, 28], labels [B]); ``key`` draws the dropout mask.

    ``total_steps`` (static) is the length of the run's learning-rate schedule.
    """
    inputs = to_model_input(batch["images"])

    def loss_fn(params):
        logits = model_of(config).apply({"params": params}, inputs, train=True, rngs={"dropout": key})
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["labels"])

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(config, total_steps).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss, "accuracy": accuracy, "grad_norm": optax.tree.norm(grads)}


def evaluate(params: dict, images: jax.Array, labels: jax.Array) -> dict:
    """Mean cross-entropy and accuracy over images uint8 [N, 28, 28] with labels [N]."""
    logits = predict_logits({"params": params}, images)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    return {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def random_shift(shift_key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Moves each image [B, 28, 28] by its own offset in [-max_shift, max_shift]^2, filling with 0."""
    if max_shift == 0:
        return images
    size = images.shape[-1]
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    offsets = jax.random.randint(shift_key, (images.shape[0], 2), 0, 2 * max_shift + 1)
    return jax.vmap(lambda image, at: jax.lax.dynamic_slice(image, at, (size, size)))(padded, offsets)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=0)
def train_epoch(state: TrainState, data: ClassifierData, epoch_key: jax.Array,
                config: ClassifierConfig) -> tuple[TrainState, dict]:
    """One shuffled pass over the training part (full batches only), then the held-out scores."""
    shuffle_key, shift_key, dropout_key = jax.random.split(epoch_key, 3)
    num_batches = data.train_idx.shape[0] // config.batch_size
    # A fresh permutation each epoch, so the images dropped by the last partial batch change.
    order = jax.random.permutation(shuffle_key, data.train_idx)
    batches = order[: num_batches * config.batch_size].reshape(num_batches, config.batch_size)

    def body(state, step_in):
        index, idx = step_in
        images = random_shift(jax.random.fold_in(shift_key, index), data.images[idx], config.max_shift)
        batch = {"images": images, "labels": data.labels[idx]}
        return train_step(state, batch, jax.random.fold_in(dropout_key, index), config,
                          config.epochs * num_batches)

    state, metrics = jax.lax.scan(body, state, (jnp.arange(num_batches), batches))
    held = evaluate(state.params, data.images[data.holdout_idx], data.labels[data.holdout_idx])
    return state, {"train_loss": jnp.mean(metrics["loss"]), "train_accuracy": jnp.mean(metrics["accuracy"]),
                   "holdout_loss": held["loss"], "holdout_accuracy": held["accuracy"],
                   "grad_norm": jnp.max(metrics["grad_norm"]), "param_norm": optax.tree.norm(state.params)}

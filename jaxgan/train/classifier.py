"""Training the digit classifier: a pure Adam step, scanned epochs, a held-out split, checkpoints.

Data flow: the uint8 images and int labels go to the device once; ``train_epoch`` is one
jitted program that shuffles, runs every batch inside ``lax.scan`` and scores the held-out
part; the host reads one small dict of metrics per epoch. The split is drawn from the run's
``split_key``: a fraction ``holdout_fraction`` of the images (default 0.2, so 2,000 of the
10,000 MNIST test images, with the other 8,000 for training) is never trained on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxgan import checkpoint, jsonl
from jaxgan.errors import UserError
from jaxgan.models.classifier import NUM_CLASSES, Classifier, classifier_for

KIND = "classifier"
# Settings that must agree before a run resumes from (or scores with) a checkpoint.
ARCHITECTURE = ("conv1", "conv2", "hidden")
PREDICT_BATCH = 500


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """One classifier run; hashable so jitted functions take it as a static argument."""

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    holdout_fraction: float = 0.2
    seed: int = 0
    conv1: int = 32
    conv2: int = 64
    hidden: int = 128
    dropout: float = 0.25
    max_shift: int = 2  # training images move by up to this many pixels each way (0: no augmentation)
    dataset: str = "auto"  # what was asked for (a --dataset value); the loaded source is logged too
    split: str = "train"

    def model(self) -> Classifier:
        """The CNN this config describes."""
        return Classifier(conv1=self.conv1, conv2=self.conv2, hidden=self.hidden, dropout=self.dropout)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ClassifierConfig:
        """The config recorded in a checkpoint (keys it does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


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


def split_holdout(n: int, holdout_fraction: float, split_key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``range(n)``: (train indices [n - h], held-out indices [h]), both sorted."""
    size = holdout_size(n, holdout_fraction)
    order = np.asarray(jax.random.permutation(split_key, n))
    return np.sort(order[size:]).astype(np.int32), np.sort(order[:size]).astype(np.int32)


def holdout_indices(n: int, config: ClassifierConfig) -> tuple[np.ndarray, np.ndarray]:
    """The split a run with ``config`` uses on ``n`` images: (train [n - h], held-out [h])."""
    return split_holdout(n, config.holdout_fraction, run_keys(config.seed)["split"])


def to_model_input(images: jax.Array) -> jax.Array:
    """uint8 [..., 28, 28] in 0..255 -> float32 in [-1, 1]; float input is taken as already in [-1, 1]."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images.astype(jnp.float32)


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
    params = config.model().init(init_key, jnp.zeros((1, 28, 28), jnp.float32), train=False)["params"]
    return TrainState(params=params, opt_state=make_optimizer(config, 1).init(params),
                      step=jnp.zeros((), jnp.int32))


def train_step(state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array,
               config: ClassifierConfig, total_steps: int) -> tuple[TrainState, dict]:
    """One Adam step on batch (images uint8 [B, 28, 28], labels [B]); ``key`` draws the dropout mask.

    ``total_steps`` (static) is the length of the run's learning-rate schedule.
    """
    inputs = to_model_input(batch["images"])

    def loss_fn(params):
        logits = config.model().apply({"params": params}, inputs, train=True, rngs={"dropout": key})
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["labels"])

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(config, total_steps).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss, "accuracy": accuracy, "grad_norm": optax.tree.norm(grads)}


def _batched(fn: Callable[[jax.Array], Any], inputs: jax.Array, batch_size: int) -> Any:
    """``fn`` over inputs [N, ...] in batches via ``lax.map`` (the tail padded): outputs [N, ...]."""
    n = inputs.shape[0]
    batch_size = max(1, min(batch_size, n))
    padded = math.ceil(n / batch_size) * batch_size
    # Padding with copies of the first row keeps every batch full, so one program serves all.
    inputs = jnp.concatenate([inputs, jnp.broadcast_to(inputs[:1], (padded - n, *inputs.shape[1:]))])
    outputs = jax.lax.map(fn, inputs.reshape(padded // batch_size, batch_size, *inputs.shape[1:]))
    return jax.tree.map(lambda y: y.reshape(padded, *y.shape[2:])[:n], outputs)


def evaluate(params: dict, images: jax.Array, labels: jax.Array, config: ClassifierConfig) -> dict:
    """Mean cross-entropy and accuracy over images uint8 [N, 28, 28] with labels [N]."""
    model = config.model()
    logits = _batched(lambda x: model.apply({"params": params}, to_model_input(x), train=False),
                      images, PREDICT_BATCH)
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
    held = evaluate(state.params, data.images[data.holdout_idx], data.labels[data.holdout_idx], config)
    return state, {"train_loss": jnp.mean(metrics["loss"]), "train_accuracy": jnp.mean(metrics["accuracy"]),
                   "holdout_loss": held["loss"], "holdout_accuracy": held["accuracy"],
                   "grad_norm": jnp.max(metrics["grad_norm"]), "param_norm": optax.tree.norm(state.params)}


def checkpoint_config(config: ClassifierConfig, *, source: str, num_images: int) -> dict:
    """What a checkpoint records: the config, its kind, and the data it was trained on."""
    return {"kind": KIND, **dataclasses.asdict(config), "source": source, "num_images": num_images}


def _resume_keys(config: ClassifierConfig) -> list[str]:
    """Config entries a resumed run must share with its checkpoint: all (the schedule spans the epochs).

    ``source`` is left out: it is prose for people; ``dataset``, ``split`` and ``num_images`` pin the data.
    """
    return [f.name for f in dataclasses.fields(config)] + ["num_images"]


def train_classifier(images: np.ndarray, labels: np.ndarray, config: ClassifierConfig, *,
                     checkpoint_dir: str | os.PathLike, source: str = "",
                     workdir: str | os.PathLike | None = None,
                     on_epoch: Callable[[dict], None] | None = None) -> tuple[dict, dict]:
    """Trains on images uint8 [N, 28, 28] with labels [N]; saves each epoch; resumes a checkpoint there.

    Writes ``config.json`` and ``metrics.jsonl`` (one line per epoch) into ``workdir`` when given,
    and calls ``on_epoch(metrics)`` after every epoch. Returns ``({"params": ...}, summary)``:
    the trained variables, and the last epoch's metrics plus the split sizes and the epoch it
    started from.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) < 2:
        raise UserError(f"the classifier needs at least two images, not {len(images)}")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"the classifier takes uint8 images [N, 28, 28], not {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1] or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise UserError("the classifier needs one label in 0..9 per image")
    keys = run_keys(config.seed)
    train_idx, holdout_idx = split_holdout(len(images), config.holdout_fraction, keys["split"])
    if len(train_idx) < config.batch_size:
        raise UserError(f"only {len(train_idx)} training images, fewer than one batch of {config.batch_size}")
    record = checkpoint_config(config, source=source, num_images=len(images))
    data = ClassifierData(images=jnp.asarray(images), labels=jnp.asarray(labels, jnp.int32),
                          train_idx=jnp.asarray(train_idx), holdout_idx=jnp.asarray(holdout_idx))

    manager = checkpoint.open_manager(checkpoint_dir, max_to_keep=2)
    try:
        start = checkpoint.latest_step(manager) or 0
        if start:
            must_match = {k: record[k] for k in _resume_keys(config)}
            abstract = jax.eval_shape(functools.partial(init_state, config=config), keys["init"])
            state, _ = checkpoint.restore(manager, abstract, kind=KIND, must_match=must_match)
        else:
            state = init_state(keys["init"], config)
        # Orbax returns arrays committed to a device and init does not; jit caches on that, so
        # commit both alike to let a resumed run reuse the compiled epoch instead of recompiling.
        state = jax.device_put(state, jax.devices()[0])
        if workdir is not None:
            os.makedirs(workdir, exist_ok=True)
            with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2)
            jsonl.truncate_after(os.path.join(workdir, "metrics.jsonl"), "epoch", start)
        metrics: dict = {}
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            # fold_in by epoch number: a resumed run draws exactly what an unbroken one would.
            state, device_metrics = train_epoch(state, data, jax.random.fold_in(keys["train"], epoch), config)
            metrics = {"epoch": epoch + 1, **{k: float(v) for k, v in device_metrics.items()},
                       "seconds": time.perf_counter() - began}
            if not all(math.isfinite(v) for v in metrics.values()):
                raise UserError(f"classifier training diverged in epoch {epoch + 1} (a metric is not "
                                f"finite); lower --learning-rate")
            checkpoint.save(manager, epoch + 1, state, record)
            if workdir is not None:
                jsonl.append(os.path.join(workdir, "metrics.jsonl"), [metrics])
            if on_epoch is not None:
                on_epoch(metrics)
        manager.wait_until_finished()
    finally:
        manager.close()
    if not metrics:  # nothing left to train: report the checkpoint as it stands
        held = evaluate(state.params, data.images[data.holdout_idx], data.labels[data.holdout_idx], config)
        metrics = {"epoch": start, "holdout_loss": float(held["loss"]),
                   "holdout_accuracy": float(held["accuracy"])}
    summary = {**metrics, "start_epoch": start, "num_train": len(train_idx), "num_holdout": len(holdout_idx)}
    return {"params": state.params}, summary


def restore_classifier(checkpoint_dir: str | os.PathLike, step: int | None = None) -> tuple[dict, dict]:
    """Restores ``({"params": ...}, config)`` of a classifier checkpoint (newest, or ``step``)."""
    manager = checkpoint.open_manager(checkpoint_dir, create=False)
    try:
        _, recorded = checkpoint.read_config(manager, step)
        config = ClassifierConfig.from_dict(recorded)
        abstract = jax.eval_shape(functools.partial(init_state, config=config), jax.random.PRNGKey(0))
        state, recorded = checkpoint.restore(manager, abstract, kind=KIND, step=step)
    finally:
        manager.close()
    return {"params": state.params}, recorded


@functools.partial(jax.jit, static_argnames=("batch_size",))
def predict(variables: Mapping[str, Any], images: jax.Array,
            batch_size: int = PREDICT_BATCH) -> tuple[jax.Array, jax.Array]:
    """Class probabilities [N, 10] and penultimate features [N, F] for images [N, 28, 28] (or [N, 784]).

    Images are uint8 in 0..255 or float in [-1, 1] (a generator's tanh output). Pure and jitted,
    so it also runs inside a caller's jit.
    """
    model = classifier_for(variables)
    images = to_model_input(jnp.reshape(images, (images.shape[0], 28, 28)))

    def apply(batch):
        logits, features = model.apply(variables, batch, method=Classifier.logits_and_features)
        return jax.nn.softmax(logits), features

    return _batched(apply, images, batch_size)

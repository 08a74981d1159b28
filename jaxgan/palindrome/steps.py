"""Part 1, one run: its static config, pure train step, scanned epochs, and training one run alone.

Data flow: ``init_run(key, length, config)`` makes a run's palindromes and parameters on the
device; ``train_epoch`` is one pass over its batches inside ``lax.scan`` followed by
validation, and ``run_epochs`` scans a chunk of epochs, returning per-epoch metrics. The sweep
(``jaxgan.palindrome.sweep``) runs many of these in one program; ``train_single`` runs one alone
(the reference the sweep must equal).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxgan.configs.palindrome import PalindromeConfig
from jaxgan.data import palindrome as pal
from jaxgan.models.recurrent import SequenceClassifier

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "grad_norm")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One sweep's static settings: a model and an encoding of a study, every run padded to ``max_length``.

    Hashable, so jitted functions take it as a static argument. Its fields are a
    ``PalindromeConfig``'s (where their defaults, help and bounds live; see ``of``).
    """

    model: str
    encoding: str
    max_length: int
    hidden: int
    num_examples: int
    val_fraction: float
    batch_size: int
    learning_rate: float
    clip_norm: float
    unroll: int
    init: str
    shuffle: bool

    @classmethod
    def of(cls, config: RunConfig, model: str, encoding: str, max_length: int) -> RunConfig:
        """``config``'s sweep of ``model`` on ``encoding`` digits, padded to ``max_length``."""
        shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)
                  if f.name not in ("model", "encoding", "max_length")}
        return cls(model=model, encoding=encoding, max_length=max_length, **shared)

    @property
    def num_train(self) -> int:
        """Training examples per run."""
        return pal.split_sizes(self.num_examples, self.val_fraction)[0]

    @property
    def batches_per_epoch(self) -> int:
        """Batches per epoch; the last one is partial (PyTorch's drop_last=False)."""
        return math.ceil(self.num_train / self.batch_size)


def run_config(model: str = "lstm", encoding: str = "scalar", max_length: int = 20, **settings) -> RunConfig:
    """A RunConfig of ``PalindromeConfig``'s defaults with ``settings`` changed (tests, benchmarks)."""
    return RunConfig.of(dataclasses.replace(PalindromeConfig(), **settings), model, encoding, max_length)


class TrainState(struct.PyTreeNode):
    """Parameters and optimizer state; no static fields, so jit caches stay stable."""

    params: dict
    opt_state: optax.OptState
    step: jax.Array  # int32 []


class RunState(struct.PyTreeNode):
    """One run: its TrainState, its key (raw uint32 [2]) and how many epochs it has done."""

    train: TrainState
    key: jax.Array
    epoch: jax.Array  # int32 []


class RunData(struct.PyTreeNode):
    """One run's examples on the device: inputs [N, L, F] float, mask [N, L] bool, labels [N]."""

    train_inputs: jax.Array
    train_mask: jax.Array
    train_labels: jax.Array
    val_inputs: jax.Array
    val_mask: jax.Array
    val_labels: jax.Array


def make_model(config: RunConfig) -> SequenceClassifier:
    """The sequence classifier that ``config`` describes."""
    return SequenceClassifier(cell=config.model, hidden=config.hidden, unroll=config.unroll,
                              initialization=config.init)


def rmsprop_torch(learning_rate: float, decay: float = 0.99,
                  eps: float = 1e-8) -> optax.GradientTransformation:
    """RMSprop with PyTorch's semantics: v = a v + (1-a) g^2; p -= lr g / (sqrt(v) + eps).

    optax's defaults differ (decay 0.9, eps inside the square root).
    """
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=False)


def make_optimizer(config: RunConfig) -> optax.GradientTransformation:
    """Global-norm clipping, then PyTorch-style RMSprop."""
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), rmsprop_torch(config.learning_rate))


def init_run(key: jax.Array, length: jax.Array | int, config: RunConfig) -> tuple[RunState, RunData]:
    """Makes one run's data and parameters from its key; ``length`` may be traced."""
    data_key, split_key, init_key, train_key = jax.random.split(key, 4)
    digits, mask, labels = pal.make_palindromes(data_key, length, config.num_examples, config.max_length)
    inputs = pal.encode(digits, config.encoding)
    train_idx, val_idx = pal.split_indices(split_key, config.num_examples, config.val_fraction)
    data = RunData(inputs[train_idx], mask[train_idx], labels[train_idx],
                   inputs[val_idx], mask[val_idx], labels[val_idx])
    # Parameters do not depend on the sequence length: initialise on one step, a smaller program.
    params = make_model(config).init(init_key, inputs[:1, :1], mask[:1, :1])["params"]
    opt_state = make_optimizer(config).init(params)
    train = TrainState(params=params, opt_state=opt_state, step=jnp.zeros((), jnp.int32))
    return RunState(train=train, key=train_key, epoch=jnp.zeros((), jnp.int32)), data


def _weighted_loss(params, config: RunConfig, inputs, mask, labels, weights):
    """Mean cross-entropy on the last step over examples with weight 1, and their accuracy."""
    logits = make_model(config).apply({"params": params}, inputs, mask)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    total = jnp.sum(weights)
    return jnp.sum(weights * losses) / total, jnp.sum(weights * correct) / total


def train_step(state: TrainState, batch: dict, key: jax.Array | None, config: RunConfig):
    """One RMSprop step on ``batch`` (inputs [B,L,F], mask [B,L], labels [B], weights [B]).

    ``key`` is unused (the model draws nothing at train time); it keeps the project's one step
    signature. Returns (state, metrics with loss, accuracy, grad_norm).
    """
    del key

    def loss_fn(params):
        return _weighted_loss(params, config, batch["inputs"], batch["mask"], batch["labels"],
                              batch["weights"])

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss, "accuracy": accuracy, "grad_norm": optax.tree.norm(grads)}


def evaluate(params, data: RunData, config: RunConfig) -> tuple[jax.Array, jax.Array]:
    """Validation (loss, accuracy) over the whole validation set in one batch."""
    weights = jnp.ones(data.val_labels.shape, jnp.float32)
    return _weighted_loss(params, config, data.val_inputs, data.val_mask, data.val_labels, weights)


def epoch_batches(shuffle_key: jax.Array, config: RunConfig) -> tuple[jax.Array, jax.Array]:
    """Batch indices [batches, B] and weights [batches, B]; the tail pads with weight 0.

    With ``config.shuffle`` the order is a permutation drawn from ``shuffle_key``; without it
    (the study's loader, ``shuffle=False``) every epoch takes the training examples in their
    stored order, so each epoch sees the same batches in the same order.
    """
    num_train, size = config.num_train, config.batch_size
    padded = config.batches_per_epoch * size
    if config.shuffle:
        order = jax.random.permutation(shuffle_key, num_train)
    else:
        order = jnp.arange(num_train)
    indices = jnp.concatenate([order, jnp.zeros(padded - num_train, order.dtype)])
    weights = (jnp.arange(padded) < num_train).astype(jnp.float32)
    return indices.reshape(-1, size), weights.reshape(-1, size)


def train_epoch(run: RunState, data: RunData, config: RunConfig) -> tuple[RunState, dict]:
    """One pass over the training set (shuffled or not, see ``epoch_batches``), then validation;
    metrics are scalars."""
    shuffle_key = jax.random.fold_in(run.key, run.epoch)
    indices, weights = epoch_batches(shuffle_key, config)

    def body(state, batch_index_weight):
        idx, w = batch_index_weight
        batch = {"inputs": data.train_inputs[idx], "mask": data.train_mask[idx],
                 "labels": data.train_labels[idx], "weights": w}
        state, metrics = train_step(state, batch, None, config)
        return state, (metrics, jnp.sum(w))

    train, (metrics, counts) = jax.lax.scan(body, run.train, (indices, weights))
    val_loss, val_acc = evaluate(train.params, data, config)
    share = counts / jnp.sum(counts)  # per-example mean over the epoch
    epoch_metrics = {"train_loss": jnp.sum(share * metrics["loss"]),
                     "train_acc": jnp.sum(share * metrics["accuracy"]),
                     "val_loss": val_loss, "val_acc": val_acc,
                     "grad_norm": jnp.max(metrics["grad_norm"])}
    return RunState(train=train, key=run.key, epoch=run.epoch + 1), epoch_metrics


def run_epochs(run: RunState, data: RunData, config: RunConfig, num_epochs: int):
    """``num_epochs`` epochs in one ``lax.scan``; metrics are arrays [num_epochs]."""
    return jax.lax.scan(lambda r, _: train_epoch(r, data, config), run, None, length=num_epochs)


def run_key(seed: int | jax.Array, length: int | jax.Array) -> jax.Array:
    """The key of the run (seed, length): every run is an independent draw."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), length)


_init_single = jax.jit(init_run, static_argnums=2)
_run_single = jax.jit(run_epochs, static_argnums=(2, 3), donate_argnums=0)


def train_single(config: RunConfig, length: int, seed: int, epochs: int) -> tuple[RunState, dict]:
    """One run without vmap (the reference the sweep must equal); metrics [epochs] each."""
    run, data = _init_single(run_key(seed, length), length, config)
    run, metrics = _run_single(run, data, config, epochs)
    return run, jax.tree.map(np.asarray, jax.device_get(metrics))

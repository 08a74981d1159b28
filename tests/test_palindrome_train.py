"""Part 1 training: the optimizer, the step, learning, and the sweep against separate runs."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan.palindrome.steps import (
    METRICS,
    epoch_batches,
    init_run,
    rmsprop_torch,
    run_config,
    run_key,
    train_single,
    train_step,
)
from jaxgan.palindrome.sweep import run_layout, sweep

TINY = run_config(hidden=16, num_examples=256, batch_size=32)


def test_rmsprop_follows_pytorch_semantics():
    lr, alpha, eps = 1e-2, 0.99, 1e-8
    grads = [np.array([0.5, -2.0, 1e-9]), np.array([-0.1, 3.0, 0.0]), np.array([1.0, 1.0, 1.0])]
    params = np.array([1.0, 2.0, 3.0])
    square_avg = np.zeros(3)
    want = params.copy()
    for g in grads:  # torch.optim.RMSprop's update, written out
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        want = want - lr * g / (np.sqrt(square_avg) + eps)
    tx = rmsprop_torch(lr)
    got, state = jnp.asarray(params, jnp.float32), tx.init(jnp.zeros(3))
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state)
        got = optax.apply_updates(got, updates)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _batch(data, size):
    return {"inputs": data.train_inputs[:size], "mask": data.train_mask[:size],
            "labels": data.train_labels[:size], "weights": jnp.ones(size)}


@pytest.mark.parametrize("model", ["lstm", "rnn"])
def test_one_step_changes_every_parameter_and_compiles_once(model):
    config = dataclasses.replace(TINY, model=model, max_length=5)
    run, data = jax.jit(init_run, static_argnums=2)(run_key(0, 5), 5, config)
    step = jax.jit(functools.partial(train_step, config=config))
    state, metrics = step(run.train, _batch(data, 32), None)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), run.train.params, state.params)
    assert all(jax.tree.leaves(changed)), changed
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((state, metrics)))
    assert int(state.step) == 1
    state, _ = step(state, _batch(data, 32), None)
    assert step._cache_size() == 1  # the second call reused the first compilation


def test_lstm_learns_length_5(xla_optimized):
    config = run_config("lstm", max_length=5)
    with xla_optimized():  # 25 epochs of the study's LSTM: running, not compiling, is most of the time
        _, metrics = train_single(config, 5, seed=0, epochs=25)  # at 99% from epoch 16, 100% from 23
    assert metrics["val_acc"][-1] >= 0.95, metrics["val_acc"]
    assert metrics["train_loss"][-1] < metrics["train_loss"][0] / 4
    assert np.isfinite(metrics["grad_norm"]).all()


# Each strategy with one model keeps the time down; the strategies do not look at the cell.
@pytest.mark.parametrize("model, strategy", [("lstm", "vmap"), ("rnn", "map")])
def test_sweep_equals_separate_runs(model, strategy):
    lengths, seeds, epochs = [3, 6], [0, 1], 3
    config = dataclasses.replace(TINY, model=model, max_length=max(lengths))
    seen = []
    _, swept = sweep(config, lengths, seeds, epochs, chunk_epochs=1, strategy=strategy,
                     on_chunk=lambda done, m: seen.append(done))
    assert seen == [1, 2, 3]
    for r, (length, seed) in enumerate((t, s) for t in lengths for s in seeds):
        # the separate run is also unpadded (max_length = its own length)
        _, alone = train_single(dataclasses.replace(config, max_length=length), length, seed, epochs)
        for name in METRICS:
            np.testing.assert_allclose(swept[name][r], alone[name], rtol=2e-5, atol=2e-6, err_msg=name)
    # runs differ from each other: each pair really got its own data and initialisation
    assert not np.allclose(swept["train_loss"][0], swept["train_loss"][1])


@pytest.mark.parametrize("devices, slots, order", [
    (1, (20, 15, 10, 5), (3, 2, 1, 0)),  # 50 steps scanned, not 80
    (2, (20, 10), (3, 1, 2, 0)),  # device 0 scans 20 + 10 for runs 3 and 1; device 1 the same for 2 and 0
    (3, (20, 5), (3, 0, 2, 0, 1, 0)),  # a copy of the shortest run fills the last slot of two devices
])
def test_runs_are_laid_out_by_length(devices, slots, order):
    layout = run_layout([5, 10, 15, 20], devices, max_length=20, by_length=True)
    assert layout.slot_lengths == slots and layout.order == order
    assert [layout.order[p] for p in layout.positions(4)] == [0, 1, 2, 3]
    # every run sits in a slot at least as long as itself, on every device
    per_device = len(slots)
    assert all([5, 10, 15, 20][run] <= slots[p % per_device] for p, run in enumerate(layout.order))


def test_vmapped_runs_keep_their_order_and_the_full_length():
    layout = run_layout([5, 10, 15, 20, 5], 2, max_length=20, by_length=False)
    assert layout.order == (0, 1, 2, 3, 4, 4) and layout.slot_lengths == (20, 20, 20)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_order_is_fixed_without_shuffle_and_redrawn_with_it(shuffle):
    """The study's loader (shuffle=False) takes the same batches in the same order every epoch;
    with shuffle=True each epoch's key gives its own permutation."""
    config = dataclasses.replace(TINY, shuffle=shuffle)  # 205 training examples, batches of 32
    first, weights = epoch_batches(jax.random.PRNGKey(1), config)
    second, _ = epoch_batches(jax.random.PRNGKey(2), config)
    real = np.asarray(weights).ravel() > 0
    assert real.sum() == config.num_train and first.shape == (config.batches_per_epoch, 32)
    # Either way every training example appears exactly once per epoch.
    np.testing.assert_array_equal(np.sort(np.asarray(first).ravel()[real]), np.arange(config.num_train))
    if shuffle:
        assert not np.array_equal(first, second)
    else:
        np.testing.assert_array_equal(np.asarray(first).ravel()[real], np.arange(config.num_train))
        np.testing.assert_array_equal(first, second)

"""The study's cells against hand computations and Flax's LSTMCell; padding changes nothing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models.recurrent import LSTMCell, RNNCell, SequenceClassifier

H, F, B = 6, 3, 4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_like(tree, key):
    """Replaces every leaf with N(0, 0.5) values, so biases are non-zero too."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noise = [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, noise)


def _lstm_step(cell_params, carry, x):
    """Applies the cell's project + step to one input x [B, F]."""
    cell = LSTMCell(H)
    projected = cell.apply({"params": cell_params}, x, method=LSTMCell.project)
    return cell.apply({"params": cell_params}, carry, projected)


@pytest.fixture
def lstm_params():
    cell = LSTMCell(H)
    x = jnp.zeros((B, F))
    # project's parameters are created by calling it once during init
    init = cell.init(jax.random.PRNGKey(0), x, method=lambda m, x: m(m.initial_carry(B), m.project(x)))
    return _random_like(init["params"], jax.random.PRNGKey(1))


def test_lstm_step_equals_the_study_equations(lstm_params):
    rng = np.random.default_rng(0)
    x, c, h = rng.normal(size=(B, F)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    Wx = np.asarray(lstm_params["input"]["kernel"])
    b = np.asarray(lstm_params["input"]["bias"])
    Wh = np.asarray(lstm_params["hidden"]["kernel"])
    block = {name: slice(k * H, (k + 1) * H) for k, name in enumerate("gifo")}
    pre = {n: x @ Wx[:, s] + h @ Wh[:, s] + b[s] for n, s in block.items()}
    g, i, f, o = np.tanh(pre["g"]), _sigmoid(pre["i"]), _sigmoid(pre["f"]), _sigmoid(pre["o"])
    c_want = g * i + c * f
    h_want = np.tanh(c_want) * o
    (c_got, h_got), out = _lstm_step(lstm_params, (jnp.asarray(c, jnp.float32), jnp.asarray(h, jnp.float32)),
                                     jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(c_got, c_want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_got, h_want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out, h_got)


def test_lstm_step_equals_flax_lstm_cell_with_mapped_weights(lstm_params):
    blocks = {name: slice(k * H, (k + 1) * H) for k, name in enumerate("gifo")}
    flax_params = {}
    for gate, s in blocks.items():
        flax_params[f"i{gate}"] = {"kernel": lstm_params["input"]["kernel"][:, s]}
        flax_params[f"h{gate}"] = {"kernel": lstm_params["hidden"]["kernel"][:, s],
                                   "bias": lstm_params["input"]["bias"][s]}
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    x = jax.random.normal(keys[0], (B, F))
    carry = (jax.random.normal(keys[1], (B, H)), jax.random.normal(keys[2], (B, H)))
    (c_ref, h_ref), _ = nn.LSTMCell(features=H).apply({"params": flax_params}, carry, x)
    (c_got, h_got), _ = _lstm_step(lstm_params, carry, x)
    np.testing.assert_allclose(c_got, c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_got, h_ref, rtol=1e-5, atol=1e-6)


def test_rnn_step_equals_the_study_equation():
    cell = RNNCell(H)
    init = cell.init(jax.random.PRNGKey(0), jnp.zeros((B, F)),
                     method=lambda m, x: m(m.initial_carry(B), m.project(x)))
    params = _random_like(init["params"], jax.random.PRNGKey(3))
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(B, F)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
    want = np.tanh(x @ np.asarray(params["input"]["kernel"]) + h @ np.asarray(params["hidden"]["kernel"])
                   + np.asarray(params["input"]["bias"]))
    projected = cell.apply({"params": params}, x, method=RNNCell.project)
    got, _ = cell.apply({"params": params}, h, projected)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell, per_step", [("lstm", 4), ("rnn", 1)])
def test_parameter_count_is_the_study_architecture(cell, per_step):
    model = SequenceClassifier(cell=cell, hidden=128)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((2, 5, 1)), jnp.ones((2, 5), bool))["params"]
    count = sum(x.size for x in jax.tree.leaves(params))
    # W_x [1, k*128] + b [k*128] + W_h [128, k*128] + W_ph [128, 10] + b_p [10]
    assert count == per_step * 128 * (1 + 1 + 128) + 128 * 10 + 10


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_left_padding_with_mask_gives_the_unpadded_logits(cell):
    model = SequenceClassifier(cell=cell, hidden=16)
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    T, pad = 5, 4
    x = jax.random.normal(keys[0], (B, T, F))
    params = _random_like(model.init(keys[1], x, jnp.ones((B, T), bool))["params"], keys[2])
    padded = jnp.concatenate([jnp.full((B, pad, F), 7.0), x], axis=1)  # junk in the padding
    mask = jnp.arange(T + pad)[None, :] >= pad
    unpadded_logits = model.apply({"params": params}, x, jnp.ones((B, T), bool))
    padded_logits = model.apply({"params": params}, padded, jnp.broadcast_to(mask, (B, T + pad)))
    np.testing.assert_allclose(padded_logits, unpadded_logits, rtol=1e-6, atol=1e-6)
    # and the mask matters: without it the padding changes the answer
    unmasked = model.apply({"params": params}, padded, jnp.ones((B, T + pad), bool))
    assert not np.allclose(unmasked, unpadded_logits, atol=1e-3)

"""The study's cells against hand computations and Flax's LSTMCell; both initialisations; padding is inert."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models.recurrent import INITS, LSTMCell, RNNCell, SequenceClassifier

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
    cell = LSTMCell(H, input_size=F, initialization="study" if "bias" in cell_params["hidden"] else "flax")
    projected = cell.apply({"params": cell_params}, x, method=LSTMCell.project)
    return cell.apply({"params": cell_params}, carry, projected)


def _cell_params(cell, key):
    """A cell's parameters, made by calling project and one step during init."""
    step = lambda m, x: m(m.initial_carry(B), m.project(x))
    return jax.jit(functools.partial(cell.init, method=step))(key, jnp.zeros((B, F)))["params"]


def _summed_bias(params):
    """b_x + b_h of every gate (the study's init keeps both; Flax's has only b_x)."""
    b = np.asarray(params["input"]["bias"])
    return b + np.asarray(params["hidden"]["bias"]) if "bias" in params["hidden"] else b


@pytest.fixture(params=INITS)
def lstm_params(request):
    params = _cell_params(LSTMCell(H, input_size=F, initialization=request.param), jax.random.PRNGKey(0))
    return _random_like(params, jax.random.PRNGKey(1))


def test_lstm_step_equals_the_study_equations(lstm_params):
    rng = np.random.default_rng(0)
    x, c, h = rng.normal(size=(B, F)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    Wx = np.asarray(lstm_params["input"]["kernel"])
    b = _summed_bias(lstm_params)
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
                                   "bias": _summed_bias(lstm_params)[s]}
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    x = jax.random.normal(keys[0], (B, F))
    carry = (jax.random.normal(keys[1], (B, H)), jax.random.normal(keys[2], (B, H)))
    (c_ref, h_ref), _ = nn.LSTMCell(features=H).apply({"params": flax_params}, carry, x)
    (c_got, h_got), _ = _lstm_step(lstm_params, carry, x)
    np.testing.assert_allclose(c_got, c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_got, h_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("init", INITS)
def test_rnn_step_equals_the_study_equation(init):
    cell = RNNCell(H, input_size=F, initialization=init)
    params = _random_like(_cell_params(cell, jax.random.PRNGKey(0)), jax.random.PRNGKey(3))
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(B, F)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
    want = np.tanh(x @ np.asarray(params["input"]["kernel"]) + h @ np.asarray(params["hidden"]["kernel"])
                   + _summed_bias(params))
    projected = cell.apply({"params": params}, x, method=RNNCell.project)
    got, _ = cell.apply({"params": params}, h, projected)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("init, biases", [("study", 2), ("flax", 1)])
@pytest.mark.parametrize("cell, per_step", [("lstm", 4), ("rnn", 1)])
def test_parameter_count_is_the_study_architecture(cell, per_step, init, biases):
    model = SequenceClassifier(cell=cell, hidden=128, initialization=init)
    inputs, mask = jnp.zeros((2, 5, 1)), jnp.ones((2, 5), bool)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), inputs, mask)["params"]
    count = sum(x.size for x in jax.tree.leaves(params))
    # W_x [1, k*128] + b_x [k*128] (+ b_h [k*128]) + W_h [128, k*128] + W_ph [128, 10] + b_p [10]
    assert count == per_step * 128 * (1 + biases + 128) + 128 * 10 + 10


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("encoding_size", [1, 10])
def test_study_initialisation_fills_each_nn_linear_bound(cell, encoding_size):
    """Every weight and bias is U(±1/sqrt(fan_in)) of its own Linear: x-side fan_in F, h-side and
    output fan_in H; the two biases of each gate are separate, different draws."""
    hidden = 128
    model = SequenceClassifier(cell=cell, hidden=hidden, initialization="study")
    inputs, mask = jnp.zeros((2, 3, encoding_size)), jnp.ones((2, 3), bool)
    params = jax.jit(model.init)(jax.random.PRNGKey(5), inputs, mask)["params"]
    fan_in = {("cell", "input"): encoding_size, ("cell", "hidden"): hidden, ("output",): hidden}
    checked = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        names = tuple(p.key for p in path)
        bound = 1.0 / np.sqrt(fan_in[names[:-1]])
        values = np.asarray(leaf).ravel()
        assert np.all(np.abs(values) <= bound), names
        if values.size >= 100:  # it fills the bound: extremes near it, the uniform's variance bound^2 / 3
            assert values.max() > 0.95 * bound and values.min() < -0.95 * bound, names
            np.testing.assert_allclose(values.var(), bound**2 / 3, rtol=0.25, err_msg=str(names))
        else:  # the output bias: 10 values, each inside the bound, not all near zero
            assert np.abs(values).max() > 0.5 * bound, names
        checked += 1
    assert checked == 6  # input kernel and bias, hidden kernel and bias, output kernel and bias
    b_x, b_h = np.asarray(params["cell"]["input"]["bias"]), np.asarray(params["cell"]["hidden"]["bias"])
    assert b_x.shape == b_h.shape and not np.allclose(b_x, b_h)


def test_flax_initialisation_is_lecun_orthogonal_and_zero_biases():
    model = SequenceClassifier(cell="lstm", hidden=32, initialization="flax")
    inputs, mask = jnp.zeros((2, 3, 10)), jnp.ones((2, 3), bool)
    params = jax.jit(model.init)(jax.random.PRNGKey(6), inputs, mask)["params"]
    assert "bias" not in params["cell"]["hidden"]
    np.testing.assert_array_equal(params["cell"]["input"]["bias"], 0.0)
    np.testing.assert_array_equal(params["output"]["bias"], 0.0)
    w_h = np.asarray(params["cell"]["hidden"]["kernel"])  # [32, 128]: orthonormal rows
    np.testing.assert_allclose(w_h @ w_h.T, np.eye(32), atol=1e-5)


def test_one_step_of_each_model_with_two_biases_equals_a_hand_computation():
    """A whole classifier (study initialisation, both biases) on a one-step sequence, by hand."""
    for cell in ("lstm", "rnn"):
        model = SequenceClassifier(cell=cell, hidden=H, initialization="study")
        x = jnp.asarray([[[3.0]], [[7.0]]])  # two scalar digits, T = 1
        params = jax.jit(model.init)(jax.random.PRNGKey(7), x, jnp.ones((2, 1), bool))["params"]
        p = jax.tree.map(np.asarray, params)
        biases = p["cell"]["input"]["bias"] + p["cell"]["hidden"]["bias"]
        pre = x[:, 0] @ p["cell"]["input"]["kernel"] + biases
        if cell == "lstm":  # h(0) = c(0) = 0, so W_h h(0) = 0 and c = g * i
            g, i, _, o = np.split(np.asarray(pre), 4, axis=-1)
            h = np.tanh(np.tanh(g) * _sigmoid(i)) * _sigmoid(o)
        else:
            h = np.tanh(np.asarray(pre))
        want = h @ p["output"]["kernel"] + p["output"]["bias"]
        got = model.apply({"params": params}, x, jnp.ones((2, 1), bool))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("init", INITS)
def test_left_padding_with_mask_gives_the_unpadded_logits(cell, init):
    model = SequenceClassifier(cell=cell, hidden=16, initialization=init)
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    T, pad = 5, 4
    x = jax.random.normal(keys[0], (B, T, F))
    params = _random_like(jax.jit(model.init)(keys[1], x, jnp.ones((B, T), bool))["params"], keys[2])
    padded = jnp.concatenate([jnp.full((B, pad, F), 7.0), x], axis=1)  # junk in the padding
    mask = jnp.arange(T + pad)[None, :] >= pad
    unpadded_logits = model.apply({"params": params}, x, jnp.ones((B, T), bool))
    padded_logits = model.apply({"params": params}, padded, jnp.broadcast_to(mask, (B, T + pad)))
    np.testing.assert_allclose(padded_logits, unpadded_logits, rtol=1e-6, atol=1e-6)
    # and the mask matters: without it the padding changes the answer
    unmasked = model.apply({"params": params}, padded, jnp.ones((B, T + pad), bool))
    assert not np.allclose(unmasked, unpadded_logits, atol=1e-3)

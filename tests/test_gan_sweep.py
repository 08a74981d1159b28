"""Many GANs in one program: each run of a sweep is its own separate run; scores per run; the summary.

Tiny networks on 160 real images in batches of 16 (10 steps an epoch), so the file compiles a
handful of small programs. The runs differ in every per-run setting at once: seed, learning rate,
Adam's betas, the discriminator loss and the EMA (one run keeps none).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import pytest

from jaxgan.classifier import steps as clf
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import steps as gan
from jaxgan.gan import sweep
from jaxgan.models.gan import decode
from jaxgan.scores import make_reference

TINY = GANConfig(latent_dim=16, gen_features=(32, 64), disc_features=(64, 32), batch_size=16, sample_every=25)
CONFIGS = [dataclasses.replace(TINY, seed=0),
           dataclasses.replace(TINY, seed=1, b1=0.9, learning_rate=1e-3, d_loss="sum"),
           dataclasses.replace(TINY, seed=2, b2=0.99, ema_decay=0.0)]
EPOCHS = 20  # 200 steps


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """160 real digits, uint8 [160, 28, 28] (scikit-learn's, offline)."""
    return load_images("digits", split="train").images[:160]


def _separate(config: GANConfig, images: np.ndarray, epochs: int) -> tuple[gan.GANState, list]:
    """``config`` trained alone for ``epochs``: its state and each epoch's (metrics, grids, grid steps)."""
    state = gan.init_state(config)
    epoch_fn = gan.epoch_function(gan.EpochConfig.of(config))
    noise = gan.grid_noise(state, config.latent_dim)
    outputs = []
    for _ in range(epochs):
        state, *out = epoch_fn(state, jax.device_put(images), noise)
        outputs.append(jax.device_get(out))
    return state, outputs


def _swept(images: np.ndarray, epochs: int, strategy: str) -> tuple[gan.GANState, list]:
    """Every config of CONFIGS in one program: the stacked state and each epoch's stacked outputs."""
    states = sweep.init_sweep(CONFIGS)
    epoch_fn = sweep.sweep_epoch_function(sweep.check_sweep(CONFIGS), strategy)
    noise = sweep.sweep_grid_noise(states, TINY.latent_dim)
    outputs = []
    for _ in range(epochs):
        states, *out = epoch_fn(states, jax.device_put(images), noise)
        outputs.append(jax.device_get(out))
    assert epoch_fn._cache_size() == 1  # one program for every setting and epoch
    return states, outputs


@pytest.fixture(scope="module")
def separate(images):
    """Each config trained alone for EPOCHS."""
    return [_separate(config, images, EPOCHS) for config in CONFIGS]


def test_a_new_sweep_is_its_runs_initial_states():
    states = sweep.init_sweep(CONFIGS)
    assert sweep.run_count(states) == len(CONFIGS)
    for r, config in enumerate(CONFIGS):
        jax.tree.map(np.testing.assert_array_equal, sweep.unstack(states, r), gan.init_state(config))
    restacked = sweep.stack([sweep.unstack(states, r) for r in range(len(CONFIGS))])
    jax.tree.map(np.testing.assert_array_equal, restacked, states)


def test_each_run_of_a_mapped_sweep_is_its_separate_run_bit_for_bit(images, separate):
    # "map" trains the runs in turn inside one program, each with the one-run program's arithmetic,
    # so no weight, optimiser moment or metric may differ, not even in the last bit, after 200 steps.
    # The grids alone are not bit for bit: a grid's train-mode BatchNorm means over its 25 images are
    # fused differently inside the mapped program (measured: within 1.8e-7, ~2 ulps of pixels in [-1, 1]).
    states, outputs = _swept(images, EPOCHS, "map")
    for r, (alone, alone_outputs) in enumerate(separate):
        jax.tree.map(np.testing.assert_array_equal, sweep.unstack(states, r), alone)
        for (metrics, grids, grid_steps), (own_metrics, own_grids, own_steps) in zip(outputs, alone_outputs,
                                                                                   strict=True):
            for name in gan.METRICS:
                np.testing.assert_array_equal(metrics[name][r], own_metrics[name])
            np.testing.assert_array_equal(grid_steps[r], own_steps)
            np.testing.assert_allclose(grids[r], own_grids, rtol=0, atol=1e-6)
    drawn = sorted({int(step) for out in outputs for step in out[2][0] if step >= 0})
    assert drawn == list(range(0, 200, 25))
    # The run without an EMA kept none inside the sweep too.
    last = sweep.unstack(states, 2)
    jax.tree.map(np.testing.assert_array_equal, last.ema_params, last.gen.params)


def test_each_run_of_a_vmapped_sweep_is_its_separate_run_to_float_rounding(images):
    # vmap batches the runs' matmuls, and XLA's batched kernels round differently from one run's.
    # What that leaves, measured over one epoch (10 steps): losses and norms within 1.2e-7 (one or
    # two float32 ulps); weights within 0.3-0.8 of the run's learning rate; eval samples within 7e-4.
    # The weights move by a learning rate because Adam normalises each coordinate: where a gradient
    # is rounding noise, m / sqrt(v) is O(1) with either sign, so a step is +-lr whatever its size.
    # A GAN amplifies such differences as it trains (after 200 steps: weights ~30 lr apart, losses
    # still within 2e-5), so the check sits where rounding is all there is: one epoch, losses to
    # 1e-6, weights to 2 learning rates, samples to 3e-3 (about 4x each measured worst case).
    states, outputs = _swept(images, 1, "vmap")
    noise = jax.random.normal(jax.random.PRNGKey(9), (64, TINY.latent_dim))
    for r, config in enumerate(CONFIGS):
        alone, alone_outputs = _separate(config, images, 1)
        swept = sweep.unstack(states, r)
        for name in ("gen", "disc"):
            jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=2 * config.learning_rate),
                         getattr(swept, name).params, getattr(alone, name).params)
        for weights in ("raw", "ema"):  # eval-mode samples of both generators
            np.testing.assert_allclose(decode(gan.generator_variables(swept, weights), noise),
                                       decode(gan.generator_variables(alone, weights), noise), atol=3e-3)
        metrics, alone_metrics = outputs[0][0], alone_outputs[0][0]
        for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
            np.testing.assert_allclose(metrics[name][r], alone_metrics[name], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(outputs[0][2][r], alone_outputs[0][2])  # grid steps


def test_every_run_is_scored_as_alone(images, separate):
    params = clf.init_state(jax.random.PRNGKey(0), ClassifierConfig(conv1=4, conv2=8, hidden=16)).params
    reference = make_reference({"params": params}, images[:64], "test reference")
    states = sweep.stack([alone for alone, _ in separate])
    noise = sweep.sweep_score_noise(states, reference.num_samples)
    scores = jax.device_get(sweep.score_sweep(states, noise, reference.variables, reference.features))
    for r, (alone, _) in enumerate(separate):
        own = gan.score_generators(alone, gan.score_noise(alone, reference.num_samples), reference.variables,
                                   reference.features)
        for weights in ("raw", "ema"):
            for name, value in own[weights].items():
                np.testing.assert_allclose(scores[weights][name][r], value, rtol=1e-5)
                assert np.isfinite(value)


def test_runs_of_one_sweep_share_every_setting_that_shapes_the_program():
    sweep.check_sweep([*CONFIGS, dataclasses.replace(TINY, epochs=3)])  # host-only settings may differ
    with pytest.raises(ValueError, match="share batch_size"):
        sweep.check_sweep([TINY, dataclasses.replace(TINY, batch_size=32)])
    with pytest.raises(ValueError, match="share gen_features"):
        sweep.check_sweep([TINY, dataclasses.replace(TINY, gen_features=(32, 32))])


def test_the_summary_gives_mean_std_and_best_run_per_setting():
    fids = [200.0, 180.0, 220.0, 300.0, 100.0]
    settings = [(0.5,), (0.5,), (0.5,), (0.9,), (0.9,)]
    rows = sweep.summarize(fids, settings)
    assert [row["setting"] for row in rows] == [(0.5,), (0.9,)]
    assert rows[0]["runs"] == 3 and rows[0]["mean"] == pytest.approx(200.0)
    assert rows[0]["std"] == pytest.approx(20.0)
    assert rows[0]["best_run"] == 1 and rows[1]["best_run"] == 4 and rows[1]["best"] == 100.0
    assert sweep.summarize(fids, settings, lower_is_better=False)[1]["best_run"] == 3
    assert sweep.summarize([5.0], [("one",)])[0]["std"] == 0.0

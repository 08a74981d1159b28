"""The MLP GAN: exact architecture, one step, no recompilation, learning on real digits, EMA, scores,
resume, CLI.

Every run here trains on 640 images in batches of 64 and samples every 5 steps, so the whole
file compiles the scanned epoch once and shares it (``epoch_function`` is cached). The scores
come from an untrained small classifier: only finiteness and equality across resumes are asserted.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import _cli, train_gan
from experiments import sample as sample_cli
from jaxgan.classifier import steps as clf
from jaxgan.classifier.train import checkpoint_record as classifier_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import ImageSet, load_images
from jaxgan.errors import UserError
from jaxgan.gan import generate
from jaxgan.gan import steps as gan
from jaxgan.gan.train import score_line, train_and_evaluate
from jaxgan.models.gan import BatchNorm1d, Discriminator, Generator, decode, recompute_batch_stats
from jaxgan.runtime import checkpoint, files, loop
from jaxgan.scores import make_reference

SMALL = 640  # images per small run: 10 steps of 64 per epoch
SAMPLE_EVERY = 5
BATCH = 64
SMALL_CLASSIFIER = ClassifierConfig(conv1=4, conv2=8, hidden=16)
SCORE_KEYS = [f"{name}_{weights}" for weights in ("raw", "ema")
              for name in ("inception_score", "inception_std", "fid")]


def _small_config(**changes) -> GANConfig:
    """The study's architecture and optimiser with the test's sampling cadence."""
    return GANConfig(**{"sample_every": SAMPLE_EVERY, "checkpoint_every": 2, **changes})


@pytest.fixture(scope="module")
def real_images(mnist_dir_or_none) -> np.ndarray:
    """The real MNIST test split when available (conftest's real_mnist_dir), else scikit-learn's digits."""
    if mnist_dir_or_none is not None:
        return load_images(f"idx:{mnist_dir_or_none}", split="test").images
    return load_images("digits", split="train").images


@pytest.fixture(scope="module")
def small_images(real_images) -> np.ndarray:
    """The first 640 real images, uint8 [640, 28, 28]."""
    return real_images[:SMALL]


@pytest.fixture(scope="module")
def reference(real_images):
    """An untrained small classifier and its features of 64 real images the runs never train on."""
    params = clf.init_state(jax.random.PRNGKey(0), SMALL_CLASSIFIER).params
    return make_reference({"params": params}, real_images[-64:], "test reference")


@pytest.fixture(scope="module")
def jitted_step():
    """``gan_step`` jitted once for the whole file (no donation, so tests can compare states)."""
    return jax.jit(gan.gan_step)


def _leaves(tree) -> list[np.ndarray]:
    """The tree's leaves as numpy arrays."""
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _dense_count(sizes: list[int]) -> int:
    """Weights and biases of a chain of Linear layers through ``sizes``."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def test_parameter_counts_and_shapes():
    state = gan.init_state(GANConfig())
    gen_expected = _dense_count([100, 128, 256, 512, 1024, 784]) + 2 * (256 + 512 + 1024)  # + BN scale, bias
    disc_expected = _dense_count([784, 512, 256, 1])
    assert gen_expected == 1_510_032 and disc_expected == 533_505
    assert sum(x.size for x in _leaves(state.gen.params)) == gen_expected
    assert sum(x.size for x in _leaves(state.disc.params)) == disc_expected
    assert sum(x.size for x in _leaves(state.gen.batch_stats)) == 2 * (256 + 512 + 1024)
    variables = {"params": state.gen.params, "batch_stats": state.gen.batch_stats}
    images = jax.eval_shape(functools.partial(Generator().apply, train=False), variables, jnp.ones((3, 100)))
    assert images.shape == (3, 784)
    logits = jax.eval_shape(Discriminator().apply, {"params": state.disc.params}, jnp.ones((3, 28, 28)))
    assert logits.shape == (3,)
    assert state.key.dtype == jnp.uint32 and state.key.shape == (2,)


def test_linear_layers_start_like_pytorch():
    params = gan.init_state(GANConfig()).gen.params
    for name in ("dense1", "dense5"):
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        bound = 1 / np.sqrt(kernel.shape[0])
        assert 0.95 * bound < np.abs(kernel).max() <= bound
        assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.5 * bound


def test_batchnorm_has_pytorch_batchnorm1d_semantics():
    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 4)).astype(np.float32)
    bn = BatchNorm1d()
    variables = bn.init(jax.random.PRNGKey(0), x, train=True)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(4))
    np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(4))
    out, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)  # biased variance normalises
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # Running averages with PyTorch's momentum 0.1, and the *unbiased* variance.
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    evaluated = bn.apply({**variables, **updates}, x, train=False)
    running_mean, running_var = updates["batch_stats"]["mean"], updates["batch_stats"]["var"]
    np.testing.assert_allclose(evaluated, (x - running_mean) / np.sqrt(running_var + 1e-5), rtol=1e-5)


def test_one_step_changes_every_parameter_finitely_and_compiles_once(jitted_step, small_images):
    state = gan.init_state(GANConfig())
    real = jnp.asarray(small_images[:BATCH], jnp.float32) / 127.5 - 1.0
    new, metrics = jitted_step(state, real, jax.random.PRNGKey(1))
    for name in ("gen", "disc"):
        for before, after in zip(_leaves(getattr(state, name).params), _leaves(getattr(new, name).params),
                                 strict=True):
            assert np.isfinite(after).all()
            assert (before != after).any(), f"a {name} parameter did not move"
    for before, after in zip(_leaves(state.gen.batch_stats), _leaves(new.gen.batch_stats), strict=True):
        assert np.isfinite(after).all() and (before != after).any()
    assert int(new.step) == 1 and int(new.gen.step) == 1 and int(new.disc.step) == 1
    assert set(metrics) == set(gan.METRICS)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    np.testing.assert_array_equal(new.key, state.key)  # the run key never changes
    jitted_step(new, real, jax.random.PRNGKey(2))
    assert jitted_step._cache_size() == 1


def test_a_few_hundred_steps_teach_the_generator_to_fool_the_discriminator(real_images):
    # Measured on MNIST: the discriminator first learns to reject nearly every fake (the
    # share it calls real falls from ~1 to ~0 by step 60-80), then the generator wins back
    # a good part (~0.4 by step 150). 200 steps, each epoch on the next 640 real images.
    state = gan.init_state(GANConfig())
    epoch_fn = gan.epoch_function(gan.EpochConfig(BATCH, SAMPLE_EVERY))
    noise = gan.grid_noise(state, 100)
    called_real = []
    for epoch in range(20):
        chunk = real_images[(epoch * SMALL) % (len(real_images) - SMALL):][:SMALL]
        state, metrics, _, _ = epoch_fn(state, jnp.asarray(chunk), noise)
        metrics = jax.device_get(metrics)
        assert all(np.isfinite(v).all() for v in metrics.values())
        called_real.extend(metrics["fake_called_real"])
    assert epoch_fn._cache_size() == 1
    windows = np.array(called_real).reshape(-1, 10).mean(axis=1)  # 20 windows of 10 steps
    early_low, late = windows[:10].min(), windows[-5:].mean()
    assert early_low < 0.1, f"the discriminator never learned to reject fakes: {windows.round(2)}"
    assert late > early_low + 0.15, f"the generator never won fakes back: {windows.round(2)}"


def _steps(step_fn, state: gan.GANState, images: np.ndarray, count: int) -> list[gan.GANState]:
    """``state`` and the states after each of ``count`` steps on one real batch (noise key of step t: t)."""
    states = [state]
    real = jnp.asarray(images[:BATCH], jnp.float32) / 127.5 - 1.0
    for t in range(1, count + 1):
        states.append(step_fn(states[-1], real, jax.random.PRNGKey(t))[0])
    return states


def test_ema_is_the_warmed_up_average_of_the_raw_weights_of_each_step(jitted_step, small_images):
    decay = GANConfig().ema_decay
    states = _steps(jitted_step, gan.init_state(GANConfig()), small_images, 4)
    expected = [np.asarray(x, np.float64) for x in jax.tree.leaves(states[0].gen.params)]
    for t in range(1, 5):
        state = states[t]
        # ema_t = d_t ema_{t-1} + (1 - d_t) params_t, d_t = min(decay, t / (t + 9)): 0.1, 0.18, 0.25, 0.31.
        w = min(decay, t / (t + 9))
        expected = [w * e + (1 - w) * p for e, p in zip(expected, _leaves(state.gen.params), strict=True)]
        for got, want in zip(_leaves(state.ema_params), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
        # A step leaves the EMA's BatchNorm statistics alone: the epoch's end measures them.
        jax.tree.map(np.testing.assert_array_equal, state.ema_batch_stats, states[0].ema_batch_stats)
        metrics = jitted_step(states[t - 1], jnp.asarray(small_images[:BATCH], jnp.float32) / 127.5 - 1.0,
                              jax.random.PRNGKey(t))[1]
        want_norm = np.sqrt(sum(np.sum(np.square(x, dtype=np.float64)) for x in _leaves(state.ema_params)))
        np.testing.assert_allclose(metrics["ema_norm"], want_norm, rtol=1e-5)
    # Late in a long run the decay is the configured one (the warm-up ends near step 9,000 at 0.999).
    assert float(gan.ema_decay_at(20_000, decay)) == np.float32(decay)
    last = states[4]
    assert not np.array_equal(last.ema_params["dense1"]["kernel"], last.gen.params["dense1"]["kernel"])
    assert gan.scored_weights(last) == ("raw", "ema")


def test_measured_batch_statistics_are_the_mean_of_each_batchs_own(jitted_step, small_images):
    # The reference is the module's own running update from (0, 1) with momentum 0.1: after one
    # train-mode pass, mean = 0.1 m and var = 0.9 + 0.1 v for that batch's mean m and unbiased variance v.
    params = _steps(jitted_step, gan.init_state(GANConfig()), small_images, 2)[-1].gen.params
    noise = jax.random.normal(jax.random.PRNGKey(7), (3, 16, 100))
    fresh = {name: {"mean": jnp.zeros_like(layer["scale"]), "var": jnp.ones_like(layer["scale"])}
             for name, layer in params.items() if name.startswith("bn")}
    update = jax.jit(functools.partial(Generator().apply, train=True, mutable=["batch_stats"]))
    per_batch = [update({"params": params, "batch_stats": fresh}, batch)[1]["batch_stats"] for batch in noise]
    measured = recompute_batch_stats(params, noise)
    assert sorted(measured) == ["bn2", "bn3", "bn4"]
    for name in measured:
        means = [np.asarray(stats[name]["mean"], np.float64) / 0.1 for stats in per_batch]
        variances = [(np.asarray(stats[name]["var"], np.float64) - 0.9) / 0.1 for stats in per_batch]
        np.testing.assert_allclose(measured[name]["mean"], np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(measured[name]["var"], np.mean(variances, axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("learning_rate", "b1", "b2"), [(2e-4, 0.5, 0.999), (1e-3, 0.9, 0.99)])
def test_adam_with_traced_settings_is_optax_adam_with_python_floats(learning_rate, b1, b2):
    # The settings are traced (one program serves all), yet every update is optax.adam's with the
    # settings as Python floats, bit for bit: the same state tree, and 1 - b rounded from float64
    # (as PyTorch computes it), not computed in float32.
    config = GANConfig(learning_rate=learning_rate, b1=b1, b2=b2)
    hparams = gan.hyperparameters(config)
    tx = optax.adam(learning_rate, b1=b1, b2=b2, eps=1e-8)
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (64, 32)), "b": jnp.zeros(32)}
    ours, theirs = (params, tx.init(params)), (params, tx.init(params))

    @jax.jit
    def optax_step(params, opt_state, grads):
        """optax.adam's update, applied."""
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(gan.adam_update)
    for t in range(5):
        key = jax.random.PRNGKey(t + 1)
        grads = jax.tree.map(lambda x, key=key: jax.random.normal(key, x.shape) * 1e-3, params)
        ours, theirs = step(ours[0], grads, ours[1], hparams), optax_step(*theirs, grads)
        jax.tree.map(np.testing.assert_array_equal, ours, theirs)
    assert float(hparams.one_minus_b2) == np.float32(1.0 - b2) != np.float32(1.0) - np.float32(b2)


def test_ema_decay_zero_keeps_the_ema_equal_to_the_raw_generator(small_images):
    # The initialiser is shared with every other decay; only this step compiles anew.
    states = _steps(jax.jit(gan.gan_step), gan.init_state(GANConfig(ema_decay=0.0)), small_images, 3)
    assert float(states[0].hparams.ema_decay) == 0.0
    for state in states[1:]:
        jax.tree.map(np.testing.assert_array_equal, state.ema_params, state.gen.params)
        jax.tree.map(np.testing.assert_array_equal, state.ema_batch_stats, state.gen.batch_stats)
    assert gan.scored_weights(states[-1]) == ("raw",)


def _run(images, config, tmp_path, name, reference=None):
    """Trains into tmp_path/name/{run,ck}."""
    return train_and_evaluate(config, str(tmp_path / name / "run"),
                              checkpoint_dir=str(tmp_path / name / "ck"),
                              data=ImageSet(images=images, labels=None, source="test images"),
                              reference=reference)


@pytest.fixture(scope="module")
def straight_run(small_images, reference, tmp_path_factory):
    """Four epochs in one go (checkpoints at epochs 2 and 4), scored at each."""
    tmp = tmp_path_factory.mktemp("gan")
    return tmp, _run(small_images, _small_config(epochs=4), tmp, "straight", reference)


def test_resumed_run_ends_bit_for_bit_in_the_uninterrupted_state(straight_run, small_images, reference):
    tmp, straight = straight_run
    first = _run(small_images, _small_config(epochs=2), tmp, "resumed", reference)
    assert first["step"] == 20 and first["resumed_from"] is None
    second = _run(small_images, _small_config(epochs=4), tmp, "resumed", reference)
    assert second["resumed_from"] == 20 and second["step"] == 40
    for a, b in zip(_leaves(straight["state"]), _leaves(second["state"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(straight["state"]) == jax.tree.structure(second["state"])
    # The EMA is part of that state, and is not just a copy of the raw generator; its BatchNorm
    # statistics are the ones measured for its final weights on the run's noise of that step.
    state = straight["state"]
    ema, raw = state.ema_params, state.gen.params
    assert not np.array_equal(ema["dense5"]["kernel"], raw["dense5"]["kernel"])
    stats_noise = jax.random.normal(gan._key_for(state.key, gan._EMA_STATS_STREAM, 40),
                                    (gan.EMA_STATS_BATCHES, BATCH, 100))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6), state.ema_batch_stats,
                 recompute_batch_stats(ema, stats_noise))
    # The logs and the pictures agree too: 40 step records, grids every 5 steps.
    logs = [(tmp / name / "run" / "metrics.jsonl").read_text() for name in ("straight", "resumed")]
    assert logs[0] == logs[1]
    # One scores line per checkpoint, raw and EMA, finite; the resumed run's log is the same text.
    scores = [(tmp / name / "run" / "scores.jsonl").read_text() for name in ("straight", "resumed")]
    assert scores[0] == scores[1]
    lines = files.read_jsonl(tmp / "straight" / "run" / "scores.jsonl")
    assert [(r["step"], r["epoch"], r["num_samples"]) for r in lines] == [(20, 2, 64), (40, 4, 64)]
    for line in lines:
        assert all(np.isfinite(line[k]) for k in SCORE_KEYS), line
    assert straight["score_s"] > 0 and (tmp / "straight" / "run" / "scores.png").is_file()
    steps = [r["step"] for r in files.read_jsonl(tmp / "straight" / "run" / "metrics.jsonl")]
    assert steps == list(range(1, 41))
    for name in ("straight", "resumed"):
        grids = sorted(p.name for p in (tmp / name / "run" / "samples").glob("step_*.png"))
        assert grids == [f"step_{s:07d}.png" for s in range(0, 41, 5)]
        assert (tmp / name / "run" / "progress.png").is_file()
    for step in range(0, 41, 5):
        grid = f"samples/step_{step:07d}.png"
        assert (tmp / "straight" / "run" / grid).read_bytes() == (tmp / "resumed" / "run" / grid).read_bytes()


def test_restored_generator_draws_the_live_generators_images(straight_run):
    tmp, straight = straight_run
    variables, config = generate.restore_generator(str(tmp / "straight" / "ck"))
    assert config["checkpoint_step"] == 40 and config["latent_dim"] == 100
    assert config["weights"] == "ema"  # the default when the checkpoint keeps an EMA
    raw, raw_config = generate.restore_generator(str(tmp / "straight" / "ck"), weights="raw")
    assert raw_config["weights"] == "raw"
    noise = jax.random.normal(jax.random.PRNGKey(5), (6, 100))
    for weights, restored in (("ema", variables), ("raw", raw)):
        live_images = decode(gan.generator_variables(straight["state"], weights), noise)
        np.testing.assert_array_equal(decode(restored, noise), live_images)
    assert not np.array_equal(decode(raw, noise), decode(variables, noise))
    images = generate.sample(variables, jax.random.PRNGKey(0), 6)
    assert images.shape == (6, 28, 28) and images.dtype == jnp.float32
    assert float(jnp.abs(images).max()) <= 1.0
    older, config = generate.restore_generator(str(tmp / "straight" / "ck"), step=20)
    assert config["checkpoint_step"] == 20
    assert not np.array_equal(older["params"]["dense1"]["kernel"], variables["params"]["dense1"]["kernel"])


def test_a_checkpoint_of_other_settings_or_images_is_one_sentence(straight_run, small_images):
    tmp, _ = straight_run
    folder = str(tmp / "straight" / "run")
    kwargs = dict(checkpoint_dir=str(tmp / "straight" / "ck"))
    data = ImageSet(images=small_images, labels=None, source="test images")
    with pytest.raises(UserError, match="--latent-dim 100 there, 50 here"):
        train_and_evaluate(_small_config(epochs=6, latent_dim=50), folder, data=data, **kwargs)
    with pytest.raises(UserError, match=r"--lr 0\.0002 there, 0\.001 here"):
        train_and_evaluate(_small_config(epochs=6, learning_rate=1e-3), folder, data=data, **kwargs)
    with pytest.raises(UserError, match="image fingerprint"):
        train_and_evaluate(_small_config(epochs=6), folder,
                           data=ImageSet(images=small_images[::-1].copy(), labels=None, source="t"), **kwargs)
    with pytest.raises(UserError, match="no checkpoint"):
        generate.restore_generator(str(tmp / "nowhere"))
    with pytest.raises(UserError, match=r"--ema-decay 0\.999 there, 0\.0 here"):
        train_and_evaluate(_small_config(epochs=6, ema_decay=0.0), folder, data=data, **kwargs)
    # Through another folder, the same checkpoints are another run's.
    with pytest.raises(UserError, match="belongs to the run in"):
        train_and_evaluate(_small_config(epochs=6), str(tmp / "other"), data=data, **kwargs)


def test_a_checkpoint_from_before_the_ema_gives_its_raw_generator_only(straight_run, small_images):
    tmp, straight = straight_run
    state = straight["state"]
    reader = checkpoint.open_manager(tmp / "straight" / "ck", create=False)
    _, record = checkpoint.read_config(reader)
    reader.close()
    # What the code before the EMA saved: the state without the EMA fields, no ema_decay recorded.
    old_state = {"gen": state.gen, "disc": state.disc, "step": state.step, "key": state.key}
    old_record = {k: v for k, v in record.items() if k != "ema_decay"}
    manager = checkpoint.open_manager(tmp / "old" / "ck")
    checkpoint.save(manager, 40, old_state, old_record)
    manager.wait_until_finished()
    manager.close()
    variables, config = generate.restore_generator(str(tmp / "old" / "ck"))
    assert config["weights"] == "raw"
    jax.tree.map(np.testing.assert_array_equal, variables, gan.generator_variables(state, "raw"))
    with pytest.raises(UserError, match=r"holds no EMA of the generator's weights \(it predates the EMA\)"):
        generate.restore_generator(str(tmp / "old" / "ck"), weights="ema")
    with pytest.raises(UserError, match=r"written with ema_decay=None, but this run has ema_decay=0\.999"):
        _run(small_images, _small_config(epochs=6), tmp, "old")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(straight_run, small_images):
    tmp, straight = straight_run
    # A checkpoint whose discriminator holds a NaN: the first step after it must stop the run.
    state = straight["state"]
    kernel = state.disc.params["dense1"]["kernel"].at[0, 0].set(jnp.nan)
    params = {**state.disc.params, "dense1": {**state.disc.params["dense1"], "kernel": kernel}}
    poisoned = state.replace(disc=state.disc.replace(params=params))
    reader = checkpoint.open_manager(tmp / "straight" / "ck", create=False)
    _, record = checkpoint.read_config(reader)
    reader.close()
    manager = checkpoint.open_manager(tmp / "nan" / "ck")
    checkpoint.save(manager, 40, gan.checkpoint_tree(poisoned), record)
    manager.wait_until_finished()
    manager.close()
    with pytest.raises(loop.NonFinite, match=r"d_loss became nan at step 41 \(epoch 5\).*step 40"):
        _run(small_images, _small_config(epochs=6), tmp, "nan")
    manager = checkpoint.open_manager(tmp / "nan" / "ck", create=False)
    assert list(manager.all_steps()) == [40]
    manager.close()
    assert not (tmp / "nan" / "run" / "metrics.jsonl").read_text().strip()


def test_a_non_finite_ema_stops_the_run_without_saving_and_names_the_step(straight_run, small_images):
    tmp, straight = straight_run
    # The EMA never feeds back into training, so the losses stay finite while it is NaN: only its own
    # watch (ema_norm) can stop the run before a checkpoint and the samples drawn from it are NaN.
    state = straight["state"]
    poisoned = state.replace(ema_params=jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan),
                                                     state.ema_params))
    reader = checkpoint.open_manager(tmp / "straight" / "ck", create=False)
    _, record = checkpoint.read_config(reader)
    reader.close()
    manager = checkpoint.open_manager(tmp / "nan_ema" / "ck")
    checkpoint.save(manager, 40, gan.checkpoint_tree(poisoned), record)
    checkpoint.confirm_saved(manager, 40)
    manager.close()
    stopped = (r"^ema_norm became nan at step 41 \(epoch 5\), so training stopped without saving; the "
               r"checkpoint at step 40 in .* holds")
    with pytest.raises(loop.NonFinite, match=stopped):
        _run(small_images, _small_config(epochs=6), tmp, "nan_ema")
    assert sorted(int(p.name) for p in (tmp / "nan_ema" / "ck").iterdir() if p.name.isdigit()) == [40]


def test_degenerate_settings_are_refused_by_the_library_before_any_work(small_images, tmp_path):
    float32 = r", which is (1|0)\.0 in float32"
    cases = {"the batch size must be at least 2: the generator's BatchNorm": {"batch_size": 1},
             r"--ema-decay must be below 1, not 0\.99999999" + float32: {"ema_decay": 0.99999999},
             r"--b1 must be below 1, not 0\.99999999" + float32: {"b1": 0.99999999},
             r"--b2 must be below 1, not 0\.999999999" + float32: {"b2": 0.999999999},
             r"--lr must be above 0, not 1e-50" + float32: {"learning_rate": 1e-50}}
    for pattern, change in cases.items():
        with pytest.raises(UserError, match=f"^{pattern}"):
            _run(small_images, _small_config(**change), tmp_path, "bad")
        assert not (tmp_path / "bad").exists(), pattern


def test_a_non_finite_score_is_written_as_null_and_named_never_as_a_number(tmp_path):
    scores = {"raw": {"inception_score": 2.5, "inception_std": 0.1, "fid": float("nan")},
              "ema": {"inception_score": float("inf"), "inception_std": 0.2, "fid": 3.0}}
    line = score_line(scores, step=10, epoch=1, num_samples=64)
    assert line["fid_raw"] is None and line["inception_score_ema"] is None
    assert line["inception_score_raw"] == 2.5 and line["fid_ema"] == 3.0
    assert line["not_finite"] == ["fid_raw", "inception_score_ema"]
    json.dumps(line, allow_nan=False)  # valid JSON: no NaN or Infinity written as a number
    later = {weights: {"inception_score": 3.0, "inception_std": 0.1, "fid": 2.0} for weights in scores}
    lines = [line, score_line(later, step=20, epoch=2, num_samples=64)]
    files.append_jsonl(tmp_path / "scores.jsonl", lines)
    from jaxgan.plotting.gan import scores_figure
    from jaxgan.scores import score_text

    scores_figure(str(tmp_path / "scores.jsonl"), str(tmp_path / "scores.png"))  # a gap, not a crash
    assert (tmp_path / "scores.png").stat().st_size > 0
    assert [score_text(v) for v in (None, float("nan"), 2.345)] == ["not finite", "not finite", "2.35"]


def _write_idx(folder: pathlib.Path, images: np.ndarray) -> None:
    """Writes images and zero labels as the uncompressed IDX test split."""
    folder.mkdir(parents=True)
    header = np.array([2051, len(images), 28, 28], ">i4").tobytes()
    (folder / "t10k-images-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = np.zeros(len(images), np.uint8)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(np.array([2049, len(images)], ">i4").tobytes()
                                                   + labels.tobytes())


def _save_classifier(directory: pathlib.Path, dataset: str, num_images: int) -> None:
    """An untrained small classifier checkpoint that records ``dataset`` (test split) as its images.

    It holds out a tenth, so 640 images give 64 reference images, as the ``reference`` fixture has:
    the scoring program compiled for the runs above serves the command line too.
    """
    config = dataclasses.replace(SMALL_CLASSIFIER, dataset=dataset, split="test", holdout_fraction=0.1)
    manager = checkpoint.open_manager(directory)
    # Initialised with SMALL_CLASSIFIER (the same shapes), whose jitted initialiser is compiled already.
    checkpoint.save(manager, 1, clf.init_state(jax.random.PRNGKey(0), SMALL_CLASSIFIER),
                    classifier_record(config, source="test idx", num_images=num_images))
    manager.wait_until_finished()
    manager.close()


def test_command_line_trains_samples_and_rejects_bad_input(small_images, tmp_path, capsys):
    _write_idx(tmp_path / "idx", small_images)
    _save_classifier(tmp_path / "clf", f"idx:{tmp_path / 'idx'}", SMALL)
    run, ck = tmp_path / "run", tmp_path / "ck"
    train_gan.main(["--dataset", f"idx:{tmp_path / 'idx'}", "--split", "test", "--epochs", "2",
                    "--sample-every", str(SAMPLE_EVERY), "--checkpoint-every", "1",
                    "--classifier-dir", str(tmp_path / "clf"),
                    "--workdir", str(run), "--checkpoint-dir", str(ck)])
    assert "step 20 scores (" in capsys.readouterr().out
    assert len(files.read_jsonl(run / "metrics.jsonl")) == 20
    # Scored at both checkpoints on the classifier's 64 held-out images (0.1 of 640).
    scores = files.read_jsonl(run / "scores.jsonl")
    assert [(r["step"], r["num_samples"]) for r in scores] == [(10, 64), (20, 64)]
    assert all(np.isfinite(r[k]) for r in scores for k in SCORE_KEYS)
    assert (run / "scores.png").is_file()
    assert json.loads((run / "config.json").read_text())["num_images"] == SMALL
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        f"step_{s:07d}.png" for s in (0, 5, 10, 15, 20)]
    assert (run / "progress.png").is_file() and (run / "losses.png").is_file()
    assert sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) == [10, 20]
    out, png = tmp_path / "out" / "samples.npy", tmp_path / "out" / "grid.png"
    sample_cli.main(["--checkpoint-dir", str(ck), "--n", "7", "--seed", "1", "--out", str(out),
                     "--png", str(png)])
    drawn = np.load(out)
    assert drawn.shape == (7, 28, 28) and drawn.dtype == np.float32
    assert -1.0 <= drawn.min() and drawn.max() <= 1.0 and png.is_file()
    assert not list(out.parent.glob("*.tmp*"))
    assert "ema weights" in capsys.readouterr().out
    raw_out = tmp_path / "out" / "raw.npy"
    sample_cli.main(["--checkpoint-dir", str(ck), "--n", "7", "--seed", "1", "--weights", "raw",
                     "--out", str(raw_out)])
    assert "raw weights" in capsys.readouterr().out
    assert not np.array_equal(np.load(raw_out), drawn)  # the same noise through other weights
    # A classifier directory that is missing or holds a GAN: one sentence, before any training.
    for classifier_dir, phrase in ((tmp_path / "absent", "no checkpoint directory"),
                                   (ck, "holds a 'gan' checkpoint, not a")):
        argv = ["--dataset", f"idx:{tmp_path / 'idx'}", "--split", "test", "--workdir", str(tmp_path / "w3"),
                "--checkpoint-dir", str(tmp_path / "ck3"), "--classifier-dir", str(classifier_dir)]
        with pytest.raises(SystemExit) as exit_info:
            _cli.run(train_gan.main, argv)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and err.startswith("error:") and "\n" not in err, err
        assert phrase in err, err
        assert not (tmp_path / "w3" / "metrics.jsonl").exists() and not (tmp_path / "ck3").exists()
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(train_gan.main, ["--dataset", f"idx:{tmp_path / 'idx'}", "--split", "test",
                                  "--batch-size", "1000", "--workdir", str(tmp_path / "run2"),
                                  "--checkpoint-dir", str(tmp_path / "ck2")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: the batch size 1000 is larger than the {SMALL} images of the data set"


def test_figures_of_a_short_run_show_each_grid_once_and_every_step():
    """A one-epoch run: one or two grids are shown once each (not step 0 twice), and its losses
    are a curve over its steps, not one per-epoch point."""
    from jaxgan.plotting.gan import progress_panels, smoothed

    assert [(s, n) for s, _, n in progress_panels([(0, "a")])] == [(0, "end")]
    assert [(s, n) for s, _, n in progress_panels([(0, "a"), (5, "b")])] == [(0, "start"), (5, "end")]
    three = [(0, "a"), (4, "b"), (10, "c")]
    assert [(s, n) for s, _, n in progress_panels(three)] == [(0, "start"), (4, "middle"), (10, "end")]
    steps, values = smoothed(np.arange(1, 11.0), np.arange(10.0))  # 10 steps: every one is a point
    np.testing.assert_array_equal(values, np.arange(10.0))
    steps, values = smoothed(np.arange(1, 1001.0), np.ones(1000))  # 1000 steps: ~200 running means
    assert 190 <= len(values) <= 200 and np.allclose(values, 1.0) and steps[0] > 1

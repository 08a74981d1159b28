"""The digit classifier, the quality scores built on it, and latent interpolation.

The classifier is trained once per module on the real MNIST test split (skipped, saying how to
provide it, when conftest's ``real_mnist_dir`` finds none): two epochs on 8,000 images at batch
64 without augmentation or dropout, which is fast and reaches 96.3% held-out; the floor asserted
is 95%. The project's full setting (20 epochs, shifts, dropout) reaches >= 98% through the CLI;
see the README.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.classifier.restore import held_out_reference, restore_classifier
from jaxgan.classifier.steps import holdout_indices, split_holdout
from jaxgan.classifier.train import train_and_evaluate as train_classifier
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.data.images import ImageSet
from jaxgan.errors import UserError
from jaxgan.gan.interpolate import find_pairs, interpolate_pairs, linear, random_pairs, slerp
from jaxgan.models.classifier import Classifier, patches_3x3_stride2, predict
from jaxgan.runtime import checkpoint
from jaxgan.scores import (
    classifier_scores,
    classifier_scores_of_sets,
    frechet_distance,
    inception_score,
    make_reference,
)

FAST = ClassifierConfig(epochs=2, batch_size=64, learning_rate=2e-3, max_shift=0, dropout=0.0, seed=0)
FLOOR = 0.95


# --- the model -------------------------------------------------------------------------------


def test_patches_match_a_strided_convolution():
    """Patches times a reshaped kernel equal lax's stride-2 SAME convolution, odd sizes included."""
    rng = np.random.default_rng(0)  # test data only; numpy's generator compiles nothing
    kernel = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)
    for size in (28, 7):
        x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
        want = jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        got = patches_3x3_stride2(x) @ kernel.reshape(27, 5)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_classifier_shapes_and_parameter_count():
    """Logits [B, 10], features [B, 128]; 421,642 parameters with the default widths."""
    model = Classifier()
    # Shapes only: eval_shape traces without compiling anything.
    variables = jax.eval_shape(lambda key: model.init(key, jnp.zeros((3, 28, 28)), train=False),
                               jax.random.PRNGKey(0))
    assert sum(x.size for x in jax.tree.leaves(variables)) == 421_642
    logits, features = jax.eval_shape(
        lambda v, x: model.apply(v, x, method=Classifier.logits_and_features), variables,
        jax.ShapeDtypeStruct((3, 784), jnp.float32))
    assert logits.shape == (3, 10) and features.shape == (3, 128)


def test_split_is_deterministic_disjoint_and_sized():
    """The held-out split: 8,000 / 2,000 of 10,000, disjoint, and the same for the same key."""
    train, held = split_holdout(10_000, 0.2, jax.random.PRNGKey(3))
    again, _ = split_holdout(10_000, 0.2, jax.random.PRNGKey(3))
    assert len(train) == 8000 and len(held) == 2000
    assert not set(train) & set(held) and len(set(train) | set(held)) == 10_000
    np.testing.assert_array_equal(train, again)
    with pytest.raises(UserError):
        split_holdout(10, 1.0, jax.random.PRNGKey(0))


# --- the trained classifier --------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    """The real MNIST test split (or the mnist_dir fixture's skip, which says how to provide it)."""
    from jaxgan.data.images import load_images

    return load_images(f"idx:{mnist_dir}", split="test")


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory, xla_optimized):
    """One short training run, shared by the tests below: (variables, summary, checkpoint dir)."""
    workdir = tmp_path_factory.mktemp("run")
    with xla_optimized():
        summary = train_classifier(FAST, str(workdir), data=mnist)
    return summary["variables"], summary, workdir / "checkpoints", workdir


@pytest.fixture(scope="module")
def split_images(mnist):
    """(training-part images [8000, 28, 28], held-out images [2000, 28, 28]) of the FAST run."""
    train_idx, held_idx = holdout_indices(len(mnist.images), FAST)
    return mnist.images[train_idx], mnist.images[held_idx]


def test_classifier_meets_its_floor_on_real_mnist(trained):
    """Trained on 8,000 of the MNIST test images, it classifies the other 2,000 well."""
    _, summary, _, workdir = trained
    assert summary["num_train"] == 8000 and summary["num_holdout"] == 2000
    assert summary["holdout_accuracy"] >= FLOOR, summary
    assert (workdir / "config.json").exists() and (workdir / "metrics.jsonl").exists()


def test_checkpoint_restores_the_same_predictions(trained, split_images):
    """restore_classifier gives back the variables: identical probabilities and features."""
    variables, _, checkpoint_dir, _ = trained
    restored, config = restore_classifier(checkpoint_dir)
    assert config["kind"] == "classifier" and config["holdout_fraction"] == 0.2
    images = split_images[1]
    for want, got in zip(predict(variables, images), predict(restored, images), strict=True):
        np.testing.assert_array_equal(np.asarray(want), np.asarray(got))


def test_predict_takes_uint8_and_generator_floats_alike(trained, split_images):
    """uint8 images and the same images as flat floats in [-1, 1] predict the same, in any batch size."""
    variables = trained[0]
    images = split_images[1]
    as_floats = images.reshape(len(images), 784).astype(np.float32) / 127.5 - 1.0
    probs_u8, feats_u8 = predict(variables, images)
    # 2,000 is not a multiple of 300: the padded tail must be dropped.
    probs_f, feats_f = predict(variables, as_floats, batch_size=300)
    assert probs_f.shape == (2000, 10) and feats_f.shape == (2000, 128)
    np.testing.assert_allclose(probs_u8, probs_f, atol=1e-5)
    np.testing.assert_allclose(feats_u8, feats_f, atol=1e-4)


def test_scores_separate_real_images_from_noise_and_repeats(trained, split_images):
    """Real held-out vs real: high IS, low FID; noise and one repeated image: low IS, high FID."""
    variables = trained[0]
    train_part, held = split_images
    reference = predict(variables, train_part[:2000])[1]
    real = {k: float(v) for k, v in classifier_scores(variables, held, reference).items()}
    noise = np.random.default_rng(7).integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    noisy = {k: float(v) for k, v in classifier_scores(variables, noise, reference).items()}
    repeated = np.repeat(held[:1], 2000, axis=0)
    same = {k: float(v) for k, v in classifier_scores(variables, repeated, reference).items()}
    # This quick classifier gives real images IS ~8 and FID ~6, noise IS ~1.3 and FID ~250.
    assert real["inception_score"] > 7.5, real
    assert noisy["inception_score"] < 2.0 and same["inception_score"] < 1.01, (noisy, same)
    assert noisy["fid"] > 20 * real["fid"] and same["fid"] > 20 * real["fid"], (real, noisy, same)


def test_a_reference_holds_the_held_out_features_and_refuses_images_that_changed(trained, split_images):
    """make_reference keeps predict's features; a checkpoint whose recorded images reload differently,
    or fewer than 10 images, is one UserError."""
    variables, _, checkpoint_dir, _ = trained
    held = split_images[1]
    reference = make_reference(variables, held[:100], "test")
    assert reference.num_samples == 100
    np.testing.assert_array_equal(reference.features, predict(variables, held[:100])[1])
    with pytest.raises(UserError, match="only 9 held-out images"):
        make_reference(variables, held[:9])
    # FAST records --dataset auto --split train (its default) but was trained on the 10,000 test images.
    with pytest.raises(UserError, match=r"was trained on 10000 images .* now gives \d+"):
        held_out_reference(str(checkpoint_dir))


def test_scores_of_several_sets_equal_the_scores_of_each(trained, split_images):
    """classifier_scores_of_sets on [2, N, ...] gives, per set, what classifier_scores gives alone."""
    variables = trained[0]
    train_part, held = split_images
    reference = predict(variables, train_part[:200])[1]
    noise = np.random.default_rng(3).integers(0, 256, (200, 28, 28), dtype=np.uint8)
    together = classifier_scores_of_sets(variables, np.stack([held[:200], noise]), reference)
    for i, images in enumerate((held[:200], noise)):
        alone = classifier_scores(variables, images, reference)
        for name, value in alone.items():
            np.testing.assert_allclose(together[name][i], value, rtol=1e-4, err_msg=name)
    assert together["fid"][1] > 10 * together["fid"][0]  # the two sets really differ


# --- scores on hand-made inputs --------------------------------------------------------------


def _balanced(confidence: float, n: int = 2000) -> np.ndarray:
    """Probs [n, 10]: class i % 10 gets ``confidence``, the other nine share the rest evenly."""
    probs = np.full((n, 10), (1.0 - confidence) / 9, np.float32)
    probs[np.arange(n), np.arange(n) % 10] = confidence
    return probs


def test_inception_score_against_hand_computed_values():
    """One-hot balanced -> 10; uniform or one repeated class -> 1; softened -> the closed form."""
    mean, std = inception_score(_balanced(1.0))
    assert abs(float(mean) - 10.0) < 1e-4 and float(std) < 1e-4
    assert abs(float(inception_score(np.full((2000, 10), 0.1, np.float32))[0]) - 1.0) < 1e-5
    one_class = np.zeros((2000, 10), np.float32)
    one_class[:, 3] = 1.0
    assert abs(float(inception_score(one_class)[0]) - 1.0) < 1e-6
    # The marginal is uniform, so KL = c log(10c) + (1 - c) log(10 (1 - c) / 9) for every image.
    c = 0.9
    want = math.exp(c * math.log(10 * c) + (1 - c) * math.log(10 * (1 - c) / 9))
    assert abs(float(inception_score(_balanced(c))[0]) - want) < 1e-3 * want


def test_inception_score_spread_over_splits():
    """Splits of different quality give a std; the tail that does not fill a split is ignored."""
    probs = np.concatenate([_balanced(1.0, 1000), np.full((1000, 10), 0.1, np.float32),
                            np.full((1, 10), 0.1, np.float32)])
    mean, std = inception_score(probs, num_splits=2)
    assert abs(float(mean) - 5.5) < 1e-3 and abs(float(std) - 4.5) < 1e-3


def _exact_gaussian_features(seed: int, n: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Features [n, F] whose sample mean is ``mean`` and unbiased sample covariance is diag(std**2)."""
    raw = np.random.default_rng(seed).normal(size=(n, len(mean)))
    # Orthonormal columns spanning centred data: they are centred and exactly uncorrelated.
    q, _ = np.linalg.qr(raw - raw.mean(0))
    return (q * math.sqrt(n - 1) * std + mean).astype(np.float32)


def test_frechet_distance_of_identical_sets_is_zero():
    """The same features twice: ~0 (relative to their total variance)."""
    features = (np.random.default_rng(1).normal(size=(1000, 64)) * 3.0 + 1.0).astype(np.float32)
    assert float(frechet_distance(features, features)) < 1e-3
    # A shift by c moves only the mean term: the distance is |c|^2.
    assert abs(float(frechet_distance(features, features + 0.5)) - 0.25 * 64) < 1e-2


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    """Diagonal covariances: d = |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2, by hand."""
    dims = 16
    mean_a, mean_b = np.zeros(dims), np.linspace(-1.0, 1.0, dims)
    std_a, std_b = np.linspace(0.5, 2.0, dims), np.linspace(2.0, 0.1, dims)
    feat_a = _exact_gaussian_features(20, 500, mean_a, std_a)
    feat_b = _exact_gaussian_features(21, 700, mean_b, std_b)
    want = sum((mean_a - mean_b) ** 2) + sum((std_a - std_b) ** 2)
    assert abs(float(frechet_distance(feat_a, feat_b)) - want) < 1e-4 * want
    # The distance does not depend on the basis: rotate both sets by one orthogonal matrix.
    rotation, _ = np.linalg.qr(np.random.default_rng(22).normal(size=(dims, dims)))
    rotated = frechet_distance(feat_a @ rotation.astype(np.float32), feat_b @ rotation.astype(np.float32))
    assert abs(float(rotated) - want) < 1e-4 * want


def test_frechet_distance_handles_singular_covariances():
    """Dead features (constant columns) and fewer samples than features stay finite and exact."""
    features = np.zeros((50, 128), np.float32)
    features[:, :4] = _exact_gaussian_features(4, 50, np.zeros(4), np.ones(4))
    shifted = features.copy()
    shifted[:, :4] *= 2.0
    # Only the first four variances differ, each std 1 -> 2: d = 4 * (2 - 1)^2.
    assert abs(float(frechet_distance(features, shifted)) - 4.0) < 1e-3


# --- interpolation ---------------------------------------------------------------------------


def test_linear_and_slerp_return_the_end_points_exactly():
    """Row 0 is z0 and row -1 is z1, bit for bit, for ordinary, parallel and opposite pairs."""
    rng = np.random.default_rng(5)
    z0, z1 = rng.normal(size=100).astype(np.float32), rng.normal(size=100).astype(np.float32)
    for a, b in [(z0, z1), (z0, 2.0 * z0), (z0, -z0), (z0, z0), (np.zeros(100, np.float32), z1)]:
        for fn in (linear, slerp):
            path = fn(a, b, 7)
            assert path.shape == (9, 100)
            assert np.all(np.isfinite(path))
            np.testing.assert_array_equal(path[0], a)
            np.testing.assert_array_equal(path[-1], b)


def test_slerp_follows_the_great_circle():
    """Between orthogonal unit vectors the path stays on the unit circle; linear cuts inside it."""
    e0, e1 = jnp.eye(4)[0], jnp.eye(4)[1]
    np.testing.assert_allclose(jnp.linalg.norm(slerp(e0, e1, 5), axis=1), 1.0, atol=1e-6)
    assert float(jnp.linalg.norm(linear(e0, e1, 1)[1])) == pytest.approx(math.sqrt(0.5))
    paths = interpolate_pairs(jnp.stack([jnp.stack([e0, e1])] * 3), num_between=7, mode="slerp")
    assert paths.shape == (3, 9, 4)
    with pytest.raises(UserError):
        interpolate_pairs(paths[:, :2], mode="cubic")


def _fake_models(confidence: float):
    """generate_fn copies the latents' first 10 dims; classify_fn makes their argmax the class."""

    def generate_fn(latents):
        return latents[:, :10]

    def classify_fn(images):
        classes = np.argmax(np.asarray(images), axis=1)
        # Confidence varies with the latent, so the threshold really filters.
        confident = np.abs(np.asarray(images)[:, 0]) > 0.5
        probs = np.full((len(classes), 10), 0.0, np.float32)
        probs[np.arange(len(classes)), classes] = np.where(confident, confidence, 0.5)
        return probs

    return generate_fn, classify_fn


def test_find_pairs_never_returns_a_same_class_pair():
    """Every pair has two classes that differ, each above the threshold; the same key, the same pairs."""
    generate_fn, classify_fn = _fake_models(0.95)
    latents, probs = find_pairs(jax.random.PRNGKey(6), generate_fn, classify_fn, num_pairs=20,
                                latent_dim=16, threshold=0.9, max_tries=5000)
    assert latents.shape == (20, 2, 16) and probs.shape == (20, 2, 10)
    classes = probs.argmax(-1)
    assert np.all(classes[:, 0] != classes[:, 1])
    assert np.all(probs.max(-1) >= 0.9)
    # The predictions belong to the returned latents.
    np.testing.assert_array_equal(classes, np.argmax(latents[..., :10], axis=-1))
    again, _ = find_pairs(jax.random.PRNGKey(6), generate_fn, classify_fn, 20, 16, 0.9, 5000)
    np.testing.assert_array_equal(latents, again)


def test_find_pairs_gives_up_with_one_sentence_and_falls_back_without_a_classifier():
    """No confident pair within max_tries -> UserError; no classifier -> random pairs and None."""
    generate_fn, classify_fn = _fake_models(0.6)
    with pytest.raises(UserError, match="found only 0 of 2 pairs"):
        find_pairs(jax.random.PRNGKey(0), generate_fn, classify_fn, 2, 16, threshold=0.9, max_tries=128)
    latents, probs = find_pairs(jax.random.PRNGKey(0), generate_fn, None, 3, 16)
    assert probs is None
    np.testing.assert_array_equal(latents, random_pairs(jax.random.PRNGKey(0), 3, 16))


# --- bad input -------------------------------------------------------------------------------


def test_restore_from_a_missing_directory_is_one_sentence(tmp_path):
    """A directory that does not exist, or holds no checkpoint, is a UserError."""
    with pytest.raises(UserError, match="no checkpoint directory"):
        restore_classifier(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint in"):
        restore_classifier(tmp_path / "empty")


def test_restore_of_another_kind_or_step_is_one_sentence(tmp_path, trained):
    """A checkpoint another experiment wrote, or a step that is not there, is a UserError."""
    manager = checkpoint.open_manager(tmp_path)
    checkpoint.save(manager, 1, {"w": jnp.zeros(3)}, {"kind": "gan"})
    manager.wait_until_finished()
    manager.close()
    with pytest.raises(UserError, match="'gan' checkpoint, not a 'classifier' one"):
        restore_classifier(tmp_path)
    with pytest.raises(UserError, match="no checkpoint at step 99"):
        restore_classifier(trained[2], step=99)


def test_training_rejects_unlabelled_shapes_and_tiny_sets(tmp_path):
    """Wrong dtype, labels out of range, or fewer images than a batch: UserError before any work."""
    images = np.zeros((40, 28, 28), np.uint8)
    labels = np.zeros(40, np.int32)
    with pytest.raises(ValueError, match="uint8"):  # an ImageSet holds uint8 images only
        ImageSet(images=images.astype(np.float32), labels=labels, source="")
    with pytest.raises(UserError, match="label"):
        train_classifier(FAST, str(tmp_path / "a"),
                         data=ImageSet(images=images, labels=labels + 10, source=""))
    with pytest.raises(UserError, match="batch size 64 is larger than the 32 training images"):
        train_classifier(ClassifierConfig(batch_size=64), str(tmp_path / "b"),
                         data=ImageSet(images=images, labels=labels, source=""))
    with pytest.raises(UserError, match="no labels"):
        train_classifier(FAST, str(tmp_path / "c"), data=ImageSet(images=images, labels=None, source="x"))
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_a_missing_folder_in_one_sentence(tmp_path, capsys):
    """The script: an IDX folder that is not there -> exit 2 and one line on stderr."""
    from experiments import _cli
    from experiments import train_classifier as script

    with pytest.raises(SystemExit) as exit_info:
        _cli.run(script.main, ["--dataset", f"idx:{tmp_path / 'nope'}", "--workdir", str(tmp_path / "w"),
                               "--checkpoint-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_an_interrupted_run_resumes_exactly(mnist, trained, tmp_path, xla_optimized):
    """A run whose newest checkpoint is epoch 1 resumes and ends with the unbroken run's parameters."""
    unbroken, _, _, workdir = trained
    # What a run stopped after epoch 1 leaves behind: the unbroken run's folder without step 2.
    shutil.copytree(workdir, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "2")
    with xla_optimized():  # compiled as the unbroken run was
        summary = train_classifier(FAST, str(tmp_path / "run"), data=mnist)
    assert summary["start_epoch"] == 1 and summary["epoch"] == 2
    jax.tree.map(np.testing.assert_array_equal, unbroken, summary["variables"])
    with pytest.raises(UserError, match="--seed 0 there, 4 here"):
        train_classifier(dataclasses.replace(FAST, seed=4), str(tmp_path / "run"), data=mnist)


# --- its checkpoints: no save skipped without a word ---

TINY = ClassifierConfig(epochs=2, batch_size=32, conv1=4, conv2=8, hidden=16, max_shift=0, dropout=0.0)


def _random_digits(count: int = 96) -> ImageSet:
    """Random uint8 images [count, 28, 28] and labels: enough to train TINY for a step an epoch."""
    rng = np.random.default_rng(0)
    return ImageSet(images=rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
                    labels=rng.integers(0, 10, count).astype(np.int32), source="random digits")


def _steps_of(directory: pathlib.Path) -> list[int]:
    """The finished checkpoint steps in a directory."""
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_a_classifier_whose_checkpoints_are_all_damaged_refuses_and_keeps_them(tmp_path):
    data = _random_digits()
    train_classifier(TINY, str(tmp_path), data=data)
    assert _steps_of(tmp_path / "checkpoints") == [1, 2]
    for step_dir in (tmp_path / "checkpoints" / "1", tmp_path / "checkpoints" / "2"):
        for path in step_dir.glob("state/**/d/*"):
            path.write_bytes(path.read_bytes()[:10])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(UserError, match=r"^none of the checkpoints in .* can be restored \(steps 2, 1\)"):
        train_classifier(TINY, str(tmp_path), data=data)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # nothing moved, nothing claimed


def test_a_classifier_save_that_orbax_declines_stops_the_run(tmp_path, monkeypatch):
    # Orbax's save answers False, writing nothing, when it believes the step is already there.
    import orbax.checkpoint as ocp

    monkeypatch.setattr(ocp.CheckpointManager, "save", lambda self, step, **kwargs: False)
    with pytest.raises(checkpoint.SaveFailed, match=r"^the checkpoint at step 1 in .* was not written"):
        train_classifier(TINY, str(tmp_path), data=_random_digits())
    assert _steps_of(tmp_path / "checkpoints") == []

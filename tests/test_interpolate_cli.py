"""experiments.interpolate: figure and JSON from a restored generator, classifier-checked rows, bad input.

A tiny GAN (small layers) trains one epoch on 320 scikit-learn digits; a classifier checkpoint
is saved untrained (only its kind and shapes matter for the error cases), and the success path
with a classifier swaps in a deterministic stand-in so the test needs no trained classifier.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _cli
from experiments import interpolate as cli
from jaxgan.classifier import restore as classifier_restore
from jaxgan.classifier import steps as clf
from jaxgan.classifier.train import checkpoint_record as classifier_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import KIND, GANConfig
from jaxgan.data.images import ImageSet, load_images
from jaxgan.gan import interpolate as interp
from jaxgan.gan.generate import restore_generator
from jaxgan.gan.steps import checkpoint_tree, init_state
from jaxgan.gan.train import train_and_evaluate as train
from jaxgan.models.gan import decode
from jaxgan.runtime import checkpoint

# The reproduce test's tiny GAN, so a suite running both compiles its epoch once.
TINY_GAN = GANConfig(gen_features=(32, 64), disc_features=(64, 32), epochs=1, batch_size=64,
                     sample_every=1, checkpoint_every=1, seed=0)
TINY_CLASSIFIER = ClassifierConfig(conv1=4, conv2=8, hidden=16)


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory):
    """A GAN checkpoint directory (step 5: one epoch of 320 images at batch 64)."""
    root = tmp_path_factory.mktemp("gan")
    digits = load_images("digits", split="train")
    train(TINY_GAN, str(root / "run"), checkpoint_dir=str(root / "ckpt"),
          data=ImageSet(images=digits.images[:320], labels=None, source=digits.source))
    return root / "ckpt"


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """An untrained classifier checkpoint: the right kind and shapes, no training."""
    directory = tmp_path_factory.mktemp("classifier")
    state = clf.init_state(jax.random.PRNGKey(0), TINY_CLASSIFIER)
    manager = checkpoint.open_manager(directory)
    checkpoint.save(manager, 1, state, classifier_record(TINY_CLASSIFIER, source="none", num_images=0))
    manager.wait_until_finished()
    manager.close()
    return directory


def _restored(gan_dir):
    """(state, record) of gan_dir's newest checkpoint."""
    reader = checkpoint.open_manager(gan_dir, create=False)
    abstract = checkpoint_tree(jax.eval_shape(functools.partial(init_state, TINY_GAN)))
    try:
        return checkpoint.restore(reader, abstract, kind=KIND)
    finally:
        reader.close()


@pytest.fixture(scope="module")
def pre_ema_dir(gan_dir, tmp_path_factory):
    """gan_dir's checkpoint as the code before the EMA wrote it: no EMA fields, no ema_decay recorded."""
    directory = tmp_path_factory.mktemp("pre_ema")
    state, record = _restored(gan_dir)
    manager = checkpoint.open_manager(directory)
    checkpoint.save(manager, 5, {name: state[name] for name in ("gen", "disc", "step", "key")},
                    {k: v for k, v in record.items() if k != "ema_decay"})
    manager.wait_until_finished()
    manager.close()
    return directory


def _stand_in_classify(images: jax.Array) -> jax.Array:
    """A deterministic 'classifier': the class is a digit of the mean pixel, confidence 0.91."""
    brightness = jnp.mean(jnp.reshape(images, (images.shape[0], -1)), axis=1)
    classes = jnp.floor(jnp.abs(brightness) * 1000.0).astype(jnp.int32) % 10
    return jax.nn.one_hot(classes, 10) * 0.9 + 0.01


def test_random_pairs_without_a_classifier_write_figure_and_json(gan_dir, tmp_path, capsys):
    """No --classifier-dir: random pairs, said so; 4 rows of 9 latents whose ends are the pair."""
    out = tmp_path / "interp.png"
    cli.main(["--checkpoint-dir", str(gan_dir), "--out", str(out)])
    assert "random pairs" in capsys.readouterr().out
    record = json.loads((tmp_path / "interp.json").read_text())
    latents = np.asarray(record["latents"], np.float32)
    assert out.stat().st_size > 0
    assert latents.shape == (4, 9, TINY_GAN.latent_dim)
    assert record["classifier_checked"] is False and record["checkpoint_step"] == 5
    assert record["weights"] == "ema"  # the default: the run kept an EMA of the generator
    want = interp.random_pairs(jax.random.PRNGKey(0), 4, TINY_GAN.latent_dim)
    np.testing.assert_array_equal(latents[:, [0, -1]], want)


def _stand_in_loader(directory, step=None):
    """``load_classify_fn`` of a test: the stand-in classifier, whatever the directory."""
    return _stand_in_classify


def test_classifier_checked_rows_end_in_different_confident_classes(gan_dir, classifier_dir, tmp_path,
                                                                    monkeypatch):
    """With a classifier every row's ends differ in class, both >= threshold; the JSON remakes the row."""
    # A real classifier directory (the script checks it), whose restored model the stand-in replaces.
    monkeypatch.setattr(classifier_restore, "load_classify_fn", _stand_in_loader)
    out = tmp_path / "rows.png"
    cli.main(["--checkpoint-dir", str(gan_dir), "--classifier-dir", str(classifier_dir), "--pairs", "3",
              "--steps", "5", "--mode", "slerp", "--threshold", "0.9", "--out", str(out)])
    record = json.loads((tmp_path / "rows.json").read_text())
    classes, confidence = np.asarray(record["classes"]), np.asarray(record["confidence"])
    assert out.exists() and classes.shape == (3, 7) and record["mode"] == "slerp"
    assert np.all(classes[:, 0] != classes[:, -1])
    assert np.all(confidence[:, [0, -1]] >= 0.9)
    gen_variables, _ = restore_generator(str(gan_dir))
    latents = np.asarray(record["latents"], np.float32)
    remade = _stand_in_classify(decode(gen_variables, latents.reshape(-1, latents.shape[-1])))
    np.testing.assert_array_equal(np.asarray(remade).argmax(-1).reshape(3, 7), classes)


def test_weights_flag_picks_the_generator_that_draws_the_rows(gan_dir, pre_ema_dir, classifier_dir, tmp_path,
                                                             monkeypatch):
    """--weights raw decodes with the raw generator (its classes remake the row); a checkpoint from
    before the EMA draws with its raw generator by default."""
    monkeypatch.setattr(classifier_restore, "load_classify_fn", _stand_in_loader)
    argv = ["--classifier-dir", str(classifier_dir), "--pairs", "2", "--steps", "3", "--threshold", "0.9"]
    remade = {}
    for weights in ("raw", "ema"):
        out = tmp_path / f"{weights}.png"
        cli.main(["--checkpoint-dir", str(gan_dir), "--weights", weights, "--out", str(out), *argv])
        record = json.loads((tmp_path / f"{weights}.json").read_text())
        assert record["weights"] == weights
        latents = np.asarray(record["latents"], np.float32).reshape(-1, TINY_GAN.latent_dim)
        variables, _ = restore_generator(str(gan_dir), weights=weights)
        remade[weights] = np.asarray(decode(variables, latents))
        classes = np.asarray(_stand_in_classify(remade[weights])).argmax(-1).reshape(2, 5)
        np.testing.assert_array_equal(classes, np.asarray(record["classes"]))
    assert not np.array_equal(remade["raw"], remade["ema"])
    cli.main(["--checkpoint-dir", str(pre_ema_dir), "--out", str(tmp_path / "old.png"), *argv])
    assert json.loads((tmp_path / "old.json").read_text())["weights"] == "raw"


def test_a_restored_classifier_gives_probabilities(classifier_dir):
    """load_classify_fn turns a classifier checkpoint into images [B, 28, 28] -> probs [B, 10]."""
    probs = np.asarray(classifier_restore.load_classify_fn(str(classifier_dir))(jnp.zeros((3, 28, 28))))
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(gan_dir, classifier_dir, pre_ema_dir, tmp_path,
                                                             capsys):
    """Missing dir, absent step, swapped checkpoint kinds, EMA weights a checkpoint lacks: one line
    on stderr, exit 2, no files."""
    out = tmp_path / "bad.png"
    cases = {
        "no checkpoint directory": ["--checkpoint-dir", str(tmp_path / "missing")],
        "no checkpoint at step 999": ["--checkpoint-dir", str(gan_dir), "--step", "999"],
        "not a GAN one": ["--checkpoint-dir", str(classifier_dir)],
        "'gan' checkpoint, not a": ["--checkpoint-dir", str(gan_dir), "--classifier-dir", str(gan_dir)],
        "holds no EMA of the generator's weights (it predates the EMA)": [
            "--checkpoint-dir", str(pre_ema_dir), "--weights", "ema"],
    }
    for phrase, argv in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            _cli.run(cli.main, [*argv, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2, phrase
        assert phrase in err and err.startswith("error:") and "\n" not in err, err
        assert list(tmp_path.iterdir()) == [], phrase


# --- nothing is drawn or written from values that are not finite ---


@pytest.fixture(scope="module")
def nan_ema_dir(gan_dir, tmp_path_factory):
    """gan_dir's checkpoint with NaN EMA weights (what an EMA decay of 1.0 in float32 trained)."""
    directory = tmp_path_factory.mktemp("nan_ema")
    state, record = _restored(gan_dir)
    state = {**state, "ema_params": jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state["ema_params"])}
    manager = checkpoint.open_manager(directory)
    checkpoint.save(manager, 5, state, record)
    checkpoint.confirm_saved(manager, 5)
    manager.close()
    return directory


def _refused(main, argv, capsys) -> str:
    """Runs a script that must refuse: exit 2 and one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(main, argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


def test_non_finite_generator_weights_draw_nothing(nan_ema_dir, tmp_path, capsys):
    from experiments import sample

    out = tmp_path / "out"
    err = _refused(sample.main, ["--checkpoint-dir", str(nan_ema_dir), "--out", str(out / "s.npy"),
                                 "--png", str(out / "s.png")], capsys)
    assert f"the ema weights of the generator at step 5 in {nan_ema_dir} are not all finite" in err
    err = _refused(cli.main, ["--checkpoint-dir", str(nan_ema_dir), "--out", str(out / "i.png")], capsys)
    assert "the ema weights of the generator at step 5" in err
    assert [p for p in out.rglob("*") if p.is_file()] == []
    # The raw weights of the same checkpoint are finite, and draw.
    sample.main(["--checkpoint-dir", str(nan_ema_dir), "--weights", "raw", "--n", "3",
                 "--out", str(out / "raw.npy")])
    assert np.isfinite(np.load(out / "raw.npy")).all()


@pytest.mark.parametrize("script", ["sample", "interpolate"])
def test_images_that_are_not_finite_are_refused_and_nothing_is_written(script, gan_dir, tmp_path, monkeypatch,
                                                                       capsys):
    # Finite weights can still draw non-finite images (an overflow): the images themselves are checked.
    from experiments import sample
    from jaxgan.gan import generate

    real_decode = generate.decode
    nan_decode = lambda variables, noise: real_decode(variables, noise) * jnp.nan
    monkeypatch.setattr(generate, "decode", nan_decode)
    monkeypatch.setattr(interp, "decode", nan_decode)
    main, name = (sample.main, "s.npy") if script == "sample" else (cli.main, "i.png")
    err = _refused(main, ["--checkpoint-dir", str(gan_dir), "--out", str(tmp_path / "out" / name)], capsys)
    assert "images that the generator (ema weights) at step 5 in" in err and "are not finite" in err
    assert err.endswith("so nothing was written")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

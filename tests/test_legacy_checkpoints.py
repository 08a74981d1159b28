"""Checkpoints written by earlier jaxgan versions still restore and resume.

tests/fixtures/legacy (commit d2b3a6f) holds one tiny checkpoint of each trainer and ``expected.json``:
what the old code computed from them (tests/fixtures/make_legacy_checkpoints.py made both).
tests/fixtures/apart (commit 940cdd7, made by tests/fixtures/make_apart_checkpoints.py) holds a run
of each trainer as that version laid them out: a results folder apart from its checkpoints. The leaf
names and the records are the ones today's code reads; a setting an old record predates takes the
value the old code had (the palindrome study's Flax initialisation and shuffled batches).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from jaxgan.classifier.restore import restore_classifier
from jaxgan.classifier.train import train_and_evaluate as classifier_train
from jaxgan.configs.base import from_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.configs.palindrome import PalindromeConfig
from jaxgan.data.images import ImageSet
from jaxgan.errors import UserError
from jaxgan.gan.generate import restore_generator
from jaxgan.gan.train import train_and_evaluate
from jaxgan.palindrome import train as palindrome

LEGACY = pathlib.Path(__file__).resolve().parent / "fixtures" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
# The old GAN summed its discriminator's two BCE terms (today's default is their mean, the study's).
GAN = GANConfig(latent_dim=4, gen_features=(8, 16), disc_features=(16, 8), batch_size=16, epochs=1,
                sample_every=1000, checkpoint_every=1, keep_checkpoints=1, seed=0, d_loss="sum")
# The old study's tiny sweep: what its record says, with the settings it predates as it had them.
PALINDROME = dataclasses.replace(PalindromeConfig(), models=("rnn",), lengths=(3,), num_seeds=1, hidden=4,
                                 num_examples=32, batch_size=8, chunk_epochs=1, init="flax", shuffle=True)


def _sums(tree) -> list[float]:
    """The sum of every leaf, in tree order (as the fixture's script computed them)."""
    return [float(np.asarray(leaf, np.float64).sum()) for leaf in jax.tree.leaves(tree)]


def _copy(name: str, tmp_path: pathlib.Path) -> pathlib.Path:
    """A writable copy of one fixture folder (a resumed run writes into it)."""
    return pathlib.Path(shutil.copytree(LEGACY / name, tmp_path / name))


def test_an_old_gan_checkpoint_restores_its_generator_and_resumes(tmp_path):
    raw, record = restore_generator(str(LEGACY / "gan"), weights="raw")
    assert record["checkpoint_step"] == EXPECTED["gan_step"] == 4
    ema, _ = restore_generator(str(LEGACY / "gan"))  # the EMA by default, as before
    assert not np.allclose(jax.tree.leaves(raw)[0], jax.tree.leaves(ema)[0])
    data = ImageSet(images=np.load(LEGACY / "data.npz")["images"], labels=None, source="fixture")
    result = train_and_evaluate(dataclasses.replace(GAN, epochs=2), str(tmp_path / "run"), data=data,
                                checkpoint_dir=str(_copy("gan", tmp_path)))
    assert result["resumed_from"] == 4 and result["step"] == 8
    with pytest.raises(UserError, match="was written with d_loss='sum', but this run has d_loss='mean'"):
        train_and_evaluate(dataclasses.replace(GAN, epochs=3, d_loss="mean"), str(tmp_path / "run2"),
                           data=data, checkpoint_dir=str(_copy("gan", tmp_path / "again")))


def test_the_old_gan_state_is_read_leaf_for_leaf(tmp_path):
    """The whole old state (both networks, both Adam states, the EMA) equals what the old code saved."""
    data = ImageSet(images=np.load(LEGACY / "data.npz")["images"], labels=None, source="fixture")
    result = train_and_evaluate(GAN, str(tmp_path / "run"), data=data,
                                checkpoint_dir=str(_copy("gan", tmp_path)))
    assert result["last_epoch"] == {}  # nothing left to train: the state is the checkpoint's
    # The hyperparameters (the state's last field) are the record's, not the checkpoint's.
    saved = result["state"].replace(hparams=None)
    np.testing.assert_allclose(_sums(saved), EXPECTED["gan_state_sums"], rtol=1e-6, atol=1e-9)


def test_an_old_palindrome_sweep_resumes_with_the_settings_it_was_written_with(tmp_path):
    checkpoints = _copy("palindrome", tmp_path)
    events = []
    results = palindrome.train(dataclasses.replace(PALINDROME, epochs=3), str(checkpoints),
                               progress=events.append)
    starts = [e for e in events if e.event == "start"]
    assert [(e.label, e.done, e.total, e.resumed) for e in starts] == [("rnn/scalar", 2, 3, True)]
    np.testing.assert_allclose(results["runs"][0]["val_acc"][:2], EXPECTED["palindrome_val_acc"])
    # The study's initialisation is a different run: refused in one sentence, nothing trained.
    with pytest.raises(UserError, match="was written with init='flax', but this run has init='study'"):
        palindrome.train(dataclasses.replace(PALINDROME, epochs=3, init="study"), str(checkpoints))


def test_an_old_classifier_checkpoint_restores_its_parameters():
    variables, record = restore_classifier(str(LEGACY / "classifier"))
    assert record["kind"] == "classifier" and record["dataset"] == "fixture"
    np.testing.assert_allclose(_sums(variables), EXPECTED["classifier_param_sums"], rtol=1e-6, atol=1e-9)


# --- runs of the version that kept each run's checkpoints apart from its folder (runs/ and checkpoints/) ---

APART = pathlib.Path(__file__).parent / "fixtures" / "apart"
APART_EXPECTED = json.loads((APART / "expected.json").read_text())


def _apart(name: str, tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Writable copies of one run's folder and of its checkpoint directory, as that version laid them out."""
    return (pathlib.Path(shutil.copytree(APART / "runs" / name, tmp_path / "runs" / name)),
            pathlib.Path(shutil.copytree(APART / "checkpoints" / name, tmp_path / "checkpoints" / name)))


def _fixture_images() -> ImageSet:
    """The 64 images (and labels) the fixtures trained on."""
    arrays = np.load(LEGACY / "data.npz")
    return ImageSet(images=arrays["images"], labels=arrays["labels"].astype(np.int32), source="fixture")


def test_a_gan_run_kept_apart_from_its_checkpoints_continues_in_its_folder(tmp_path):
    """Its folder asks for its checkpoints (one sentence); given them, the run continues there."""
    folder, checkpoints = _apart("gan", tmp_path)
    config = from_record(GANConfig, json.loads((folder / "config.json").read_text()))
    more = dataclasses.replace(config, epochs=2)
    with pytest.raises(UserError, match=r"earlier jaxgan version.*--checkpoint-dir"):
        train_and_evaluate(more, str(folder), data=_fixture_images())
    result = train_and_evaluate(more, str(folder), data=_fixture_images(), checkpoint_dir=str(checkpoints))
    assert result["resumed_from"] == APART_EXPECTED["gan_step"] == 4 and result["step"] == 8
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the old run's log kept, the new steps after it
    assert json.loads((folder / "config.json").read_text())["checkpoint_dir"] == str(checkpoints)


def test_a_palindrome_study_kept_apart_continues_in_its_folder(tmp_path):
    """An old Part 1 folder has no record of its own: its results.json's settings stand for it."""
    folder, checkpoints = _apart("palindrome", tmp_path)
    saved = json.loads((folder / "results.json").read_text())["config"]
    config = from_record(PalindromeConfig, {**saved, "num_seeds": len(saved["seeds"]), "epochs": 3})
    results = palindrome.train_and_evaluate(config, str(folder), checkpoint_dir=str(checkpoints))
    np.testing.assert_allclose(results["runs"][0]["val_acc"][:2], APART_EXPECTED["palindrome_val_acc"])
    with pytest.raises(UserError, match="--hidden 4 there, 8 here"):
        palindrome.train_and_evaluate(dataclasses.replace(config, hidden=8), str(folder),
                                      checkpoint_dir=str(checkpoints))


def test_a_classifier_run_kept_apart_continues_in_its_folder(tmp_path):
    folder, checkpoints = _apart("classifier", tmp_path)
    config = from_record(ClassifierConfig, json.loads((folder / "config.json").read_text()))
    # Its epochs shape its learning-rate schedule, so the finished run is found whole, not extended.
    result = classifier_train(config, str(folder), data=_fixture_images(), checkpoint_dir=str(checkpoints))
    assert result["start_epoch"] == result["epoch"] == APART_EXPECTED["classifier_epoch"] == 1
    np.testing.assert_allclose(_sums(result["variables"]), APART_EXPECTED["classifier_param_sums"], rtol=1e-6)

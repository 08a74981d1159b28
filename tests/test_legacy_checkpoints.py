"""Checkpoints written by an earlier jaxgan (commit d2b3a6f, tests/fixtures/legacy) still restore and resume.

The fixture holds one tiny checkpoint of each trainer and ``expected.json``: what the old code
computed from them (tests/fixtures/make_legacy_checkpoints.py made both). The leaf names and the
records are the ones today's code reads; a setting an old record predates takes the value the old
code had (the palindrome study's Flax initialisation and shuffled batches).
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
from jaxgan.configs.gan import GANConfig
from jaxgan.configs.palindrome import PalindromeConfig
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
    images = np.load(LEGACY / "data.npz")["images"]
    result = train_and_evaluate(images, dataclasses.replace(GAN, epochs=2), workdir=str(tmp_path / "run"),
                                checkpoint_dir=str(_copy("gan", tmp_path)), source="fixture")
    assert result["resumed_from"] == 4 and result["step"] == 8
    with pytest.raises(UserError, match="was written with d_loss='sum', but this run has d_loss='mean'"):
        train_and_evaluate(images, dataclasses.replace(GAN, epochs=3, d_loss="mean"), source="fixture",
                           workdir=str(tmp_path / "run"), checkpoint_dir=str(tmp_path / "gan"))


def test_the_old_gan_state_is_read_leaf_for_leaf(tmp_path):
    """The whole old state (both networks, both Adam states, the EMA) equals what the old code saved."""
    result = train_and_evaluate(np.load(LEGACY / "data.npz")["images"], GAN, workdir=str(tmp_path / "run"),
                                checkpoint_dir=str(_copy("gan", tmp_path)), source="fixture")
    assert result["last_epoch"] == {}  # nothing left to train: the state is the checkpoint's
    # The hyperparameters (the state's last field) are the record's, not the checkpoint's.
    saved = result["state"].replace(hparams=None)
    np.testing.assert_allclose(_sums(saved), EXPECTED["gan_state_sums"], rtol=1e-6, atol=1e-9)


def test_an_old_palindrome_sweep_resumes_with_the_settings_it_was_written_with(tmp_path):
    checkpoints = _copy("palindrome", tmp_path)
    logged = []
    results = palindrome.train(dataclasses.replace(PALINDROME, epochs=3), str(checkpoints), log=logged.append)
    where = checkpoints / "rnn-scalar"
    assert logged == [f"rnn/scalar: resuming from the checkpoint at epoch 2 of 3 in {where}"]
    np.testing.assert_allclose(results["runs"][0]["val_acc"][:2], EXPECTED["palindrome_val_acc"])
    # The study's initialisation is a different run: refused in one sentence, nothing trained.
    with pytest.raises(UserError, match="was written with init='flax', but this run has init='study'"):
        palindrome.train(dataclasses.replace(PALINDROME, epochs=3, init="study"), str(checkpoints))


def test_an_old_classifier_checkpoint_restores_its_parameters():
    variables, record = restore_classifier(str(LEGACY / "classifier"))
    assert record["kind"] == "classifier" and record["dataset"] == "fixture"
    np.testing.assert_allclose(_sums(variables), EXPECTED["classifier_param_sums"], rtol=1e-6, atol=1e-9)

"""``train_gan --seeds ...``: a sweep of GANs in one program, each run in its own sub-folder, equal to its
separate run; grids of settings and their summary; a SIGTERM and a kill between the runs' saves resumed
exactly; scores per run; folders that hold something else refused.

Tiny networks on 128 of scikit-learn's digits in batches of 16 (8 steps an epoch), 3 epochs at most,
checkpoints every epoch. In this process JAX has one CPU device, so ``auto`` is the ``map`` strategy:
each run is trained with its separate run's arithmetic, which makes every comparison here exact.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from script_runs import run_script

from experiments import _cli, train_gan
from jaxgan.classifier import steps as clf
from jaxgan.configs.base import from_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import KIND, GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import sweep, train_sweep
from jaxgan.gan import train as gan_train
from jaxgan.gan.steps import checkpoint_tree, init_state
from jaxgan.runtime import checkpoint
from jaxgan.scores import make_reference

TINY = ["--dataset", "digits", "--limit-images", "128", "--batch-size", "16", "--latent-dim", "16",
        "--gen-features", "32", "64", "--disc-features", "64", "32", "--sample-every", "3",
        "--checkpoint-every", "1", "--no-compile-cache"]
EPOCHS = ["--epochs", "3"]
STEPS = 8  # per epoch


def _train_gan(argv, capsys) -> tuple[int, str, str]:
    """One in-process ``train_gan`` run; (exit code, stdout, stderr)."""
    return run_script(train_gan.main, [*TINY, *argv], capsys)


def _steps_of(directory: pathlib.Path) -> list[int]:
    """The finished checkpoint steps in a directory."""
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _newest(directory: pathlib.Path) -> dict:
    """The newest checkpoint of a GAN checkpoint directory, restored as host arrays."""
    manager = checkpoint.open_manager(directory, create=False)
    try:
        step = _steps_of(directory)[-1]
        config = from_record(GANConfig, checkpoint.read_config(manager, step)[1])
        abstract = checkpoint_tree(jax.eval_shape(lambda: init_state(config)))
        return jax.device_get(checkpoint.restore(manager, abstract, kind=KIND, step=step)[0])
    finally:
        manager.close()


def _names(folder: pathlib.Path) -> list[str]:
    """What a folder holds, less its lock files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _lines(path: pathlib.Path) -> list[dict]:
    """A JSON-lines file's records."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_run(ours: pathlib.Path, theirs: pathlib.Path) -> None:
    """Two GAN run folders ended in the same checkpoint, bit for bit, with the same steps and metrics."""
    assert _steps_of(ours / "checkpoints") == _steps_of(theirs / "checkpoints")
    jax.tree.map(np.testing.assert_array_equal, _newest(ours / "checkpoints"),
                 _newest(theirs / "checkpoints"))
    assert _lines(ours / "metrics.jsonl") == _lines(theirs / "metrics.jsonl")


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> pathlib.Path:
    """``train_gan --seeds 0 1`` for 3 epochs, unbroken, in a folder of its own."""
    root = tmp_path_factory.mktemp("unbroken")
    _cli.run(train_gan.main, [*TINY, *EPOCHS, "--seeds", "0", "1", "--workdir", str(root / "sweep")])
    return root / "sweep"


def test_each_run_of_a_sweep_equals_its_separate_run(unbroken, tmp_path, capsys):
    assert _names(unbroken) == ["config.json", "seed0", "seed1", "summary.md"]
    assert json.loads((unbroken / "config.json").read_text())["kind"] == "gan-sweep"
    for seed in (0, 1):
        code, _, err = _train_gan([*EPOCHS, "--seed", str(seed), "--workdir", str(tmp_path / f"alone{seed}")],
                                  capsys)
        assert code == 0, err
        run = unbroken / f"seed{seed}"
        # A run's folder is a plain GAN run folder, its record that of the separate run.
        assert json.loads((run / "config.json").read_text()) == json.loads(
            (tmp_path / f"alone{seed}" / "config.json").read_text())
        assert (run / "progress.png").is_file() and (run / "losses.png").is_file()
        assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
        _assert_same_run(run, tmp_path / f"alone{seed}")
        assert sorted(os.listdir(run / "samples")) == sorted(os.listdir(tmp_path / f"alone{seed}/samples"))


def test_a_grid_of_settings_trains_every_combination_and_summarizes_each_setting(tmp_path, capsys):
    code, out, err = _train_gan(["--epochs", "1", "--seeds", "0", "1", "--b1", "0.5", "0.9",
                                 "--workdir", str(tmp_path / "grid")], capsys)
    assert code == 0, err
    names = ["b10.5-seed0", "b10.5-seed1", "b10.9-seed0", "b10.9-seed1"]
    assert f"4 runs in one program: {', '.join(names)}" in out
    assert _names(tmp_path / "grid") == sorted([*names, "config.json", "summary.md"])
    for name in names:
        record = json.loads((tmp_path / "grid" / name / "config.json").read_text())
        assert (record["b1"], record["seed"]) == (float(name[2:5]), int(name[-1]))
        assert len(_lines(tmp_path / "grid" / name / "metrics.jsonl")) == STEPS
    summary = (tmp_path / "grid" / "summary.md").read_text()
    assert summary in out
    rows = [line for line in summary.splitlines() if line.startswith("| --b1")]
    assert len(rows) == 2 and rows[0].startswith("| --b1 0.5 | 2 |") and all(" ± " in row for row in rows)


def _sigterm_after_epoch(monkeypatch, epoch: int) -> None:
    """Makes the sweep send itself a real SIGTERM as it writes the given epoch's log of its first run."""
    real = gan_train._write_epoch

    def write_epoch(*args, **kwargs):
        """The real writer; then SIGTERM at the chosen epoch."""
        real(*args, **kwargs)
        if kwargs["epoch"] == epoch and "seed0" in kwargs["metrics_path"]:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(gan_train, "_write_epoch", write_epoch)


def test_a_sweep_stopped_by_sigterm_and_killed_between_saves_resumes_as_if_unbroken(
        unbroken, tmp_path, monkeypatch, capsys):
    argv = [*EPOCHS, "--seeds", "0", "1", "--workdir", str(tmp_path / "sweep")]
    _sigterm_after_epoch(monkeypatch, 2)
    code, _, err = _train_gan(argv, capsys)
    assert code == 128 + signal.SIGTERM, err
    assert "stopped: SIGTERM received: saved every run's checkpoint at step 16 (the end of epoch 2)" in err
    for seed in (0, 1):
        assert _steps_of(tmp_path / "sweep" / f"seed{seed}" / "checkpoints") == [8, 16]
    # As if killed between the runs' saves: the second run's step 16 never written (moved out of the way).
    (tmp_path / "sweep" / "seed1" / "checkpoints" / "16").rename(tmp_path / "lost-16")
    monkeypatch.undo()
    code, out, err = _train_gan(argv, capsys)
    assert code == 0, err
    assert "resuming at epoch 1 of 3" in out
    assert "the sweep resumes every run at step 8, the newest step all of them hold" in err
    assert (tmp_path / "sweep" / "seed0" / "checkpoints" / checkpoint.DAMAGED_DIR / "16").is_dir()  # kept
    for seed in (0, 1):
        _assert_same_run(tmp_path / "sweep" / f"seed{seed}", unbroken / f"seed{seed}")


def test_a_non_finite_metric_in_one_run_stops_the_sweep_naming_it_before_saving(tmp_path, monkeypatch,
                                                                                   capsys):
    real = sweep.sweep_epoch_function

    def poisoned(*args, **kwargs):
        """The real sweep epoch, whose second epoch reports a NaN g_loss for run 1 at its fourth step."""
        lowered_of = real(*args, **kwargs).lower

        def lower(*example):
            compiled = lowered_of(*example).compile()

            def call(states, images, noise):
                states, metrics, grids, grid_steps = compiled(states, images, noise)
                if int(states.step[0]) == 2 * STEPS:
                    metrics = {**metrics, "g_loss": metrics["g_loss"].at[1, 3].set(jnp.nan)}
                return states, metrics, grids, grid_steps

            return types.SimpleNamespace(compile=lambda: call)

        return types.SimpleNamespace(lower=lower)

    monkeypatch.setattr(sweep, "sweep_epoch_function", poisoned)
    code, _, err = _train_gan([*EPOCHS, "--seeds", "0", "1", "--workdir", str(tmp_path / "sweep")], capsys)
    seed1 = tmp_path / "sweep" / "seed1"
    assert code == 2, err
    assert (f"in the run seed1, g_loss became nan at step {STEPS + 4} (epoch 2), so training stopped "
            f"without saving; the checkpoint at step {STEPS} in {seed1 / 'checkpoints'} holds the last good "
            f"state") in err
    for seed, logged in ((0, 2 * STEPS), (1, STEPS + 3)):  # every finite step, and nothing after the NaN
        assert _steps_of(tmp_path / "sweep" / f"seed{seed}" / "checkpoints") == [STEPS]
        assert len(_lines(tmp_path / "sweep" / f"seed{seed}" / "metrics.jsonl")) == logged


def _listing(root: pathlib.Path) -> dict[str, float]:
    """Every path under ``root`` with its modification time."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_a_sweep_refuses_a_folder_of_one_gan_run_or_of_another_sweep(unbroken, tmp_path, capsys):
    code, _, err = _train_gan(["--epochs", "1", "--workdir", str(tmp_path / "one")], capsys)
    assert code == 0, err
    for folder, argv, said in [
            (tmp_path / "one", ["--seeds", "0", "1"], "holds a GAN run, not a GAN sweep one"),
            (unbroken, ["--seeds", "0", "1", "2"], "holds another GAN sweep run (runs seed0 seed1 there, "
                                                   "seed0 seed1 seed2 here)"),
            (unbroken / "seed0", ["--seeds", "0"], "holds a GAN run, not a GAN sweep one")]:
        before = _listing(folder)
        code, _, err = _train_gan([*EPOCHS, *argv, "--workdir", str(folder)], capsys)
        assert code == 2 and said in err and err.count("\n") == 1, err
        assert _listing(folder) == before
    code, _, err = _train_gan([*EPOCHS, "--workdir", str(unbroken)], capsys)  # one run into a sweep
    assert code == 2 and "holds a GAN sweep run, not a GAN one" in err, err
    code, _, err = _train_gan(["--seeds", "0", "--seed", "1"], capsys)
    assert code == 2 and "a sweep takes its seeds from --seeds" in err, err
    # --restart moves what the folder held aside, whole, and the sweep starts there.
    held = _names(tmp_path / "one")
    code, _, err = _train_gan(["--epochs", "1", "--seeds", "0", "--workdir", str(tmp_path / "one"),
                               "--restart"], capsys)
    assert code == 0, err
    (moved,) = tmp_path.glob("one.replaced-*")
    assert _names(moved) == held and _names(tmp_path / "one") == ["config.json", "seed0", "summary.md"]


def test_every_run_is_scored_and_the_summary_gives_fid_and_is_per_setting(tmp_path, capsys):
    images = load_images("digits", split="train").images
    params = clf.init_state(jax.random.PRNGKey(0), ClassifierConfig(conv1=4, conv2=8, hidden=16)).params
    reference = make_reference({"params": params}, images[-64:], "test reference")
    args = train_gan.parse_args([*TINY, "--epochs", "1", "--seeds", "0", "1", "--lr", "2e-4", "1e-3"])
    base = _cli.config_from_args(GANConfig, args)
    configs = train_sweep.grid_configs(base, args.seeds, args.grid)
    data = _cli.load_image_flags(args)
    data = type(data)(images=data.images[:128], labels=None, source=data.source)
    result = train_sweep.train_sweep_and_evaluate(configs, str(tmp_path / "scored"), data=data,
                                                  reference=reference)
    assert result["names"] == ["lr0.0002-seed0", "lr0.0002-seed1", "lr0.001-seed0", "lr0.001-seed1"]
    for name in result["names"]:
        (line,) = _lines(tmp_path / "scored" / name / "scores.jsonl")
        assert line["step"] == STEPS
        assert all(np.isfinite(line[f"{score}_{weights}"]) for score in ("fid", "inception_score")
                   for weights in ("raw", "ema"))
    first = result["rows"][0]
    assert first["setting"] == {"learning_rate": 2e-4}
    assert first["runs"] == ["lr0.0002-seed0", "lr0.0002-seed1"]
    fids = [_lines(tmp_path / "scored" / name / "scores.jsonl")[0]["fid_ema"] for name in first["runs"]]
    assert first["fid_ema"]["mean"] == pytest.approx(np.mean(fids))
    assert first["fid_ema"]["std"] == pytest.approx(np.std(fids, ddof=1))
    assert first["fid_ema"]["best_run"] == first["runs"][int(np.argmin(fids))]
    header = "| setting | runs | FID raw | FID EMA | IS raw | IS EMA | best run by FID EMA |"
    assert header in result["summary"]

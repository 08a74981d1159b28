"""experiments.palindrome end to end on tiny settings, and its answers to bad input."""

import json
import os

import jax
import numpy as np
import pytest

from experiments import _cli
from experiments import palindrome as script
from jaxgan import checkpoint
from jaxgan.palindrome_study import CHECKPOINT_KIND
from jaxgan.train.palindrome import PalindromeConfig, init_sweep

TINY_FLAGS = ["--hidden", "8", "--num-examples", "64", "--batch-size", "16", "--chunk-epochs", "1"]


def test_tiny_run_writes_results_figures_summary_and_checkpoints(tmp_path, capsys):
    workdir, ckdir = tmp_path / "run", tmp_path / "ck"
    script.main(["--lengths", "3", "4", "--seeds", "2", "--epochs", "2", "--models", "lstm",
                 "--workdir", str(workdir), "--checkpoint-dir", str(ckdir), *TINY_FLAGS])
    out = capsys.readouterr().out
    assert "| model | encoding | T=3 | T=4 |" in out
    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["lengths"] == [3, 4] and results["config"]["epochs"] == 2
    runs = results["runs"]
    assert len(runs) == 2 * 2
    assert {(r["model"], r["length"], r["seed"]) for r in runs} == {
        (m, t, s) for m in ("lstm",) for t in (3, 4) for s in (0, 1)}
    for run in runs:
        assert set(run) == {"model", "encoding", "length", "seed", "train_loss", "train_acc", "val_loss",
                            "val_acc", "grad_norm", "final_val_acc"}
        assert len(run["val_acc"]) == 2 and run["final_val_acc"] == run["val_acc"][-1]
    for name in ["summary.md", "curves_T3_scalar.png", "curves_T4_scalar.png", "final_accuracy.png"]:
        assert (workdir / name).stat().st_size > 0, name
    assert not list(workdir.glob("*.tmp*"))

    # the checkpoint restores into an abstract sweep state and its config names the sweep
    config = PalindromeConfig(model="lstm", hidden=8, num_examples=64, batch_size=16, max_length=4)
    seeds, lengths = np.array([0, 1, 0, 1]), np.array([3, 3, 4, 4])
    abstract, _ = jax.eval_shape(lambda: init_sweep(seeds, lengths, config))
    manager = checkpoint.open_manager(ckdir / "lstm-scalar", create=False)
    state, saved = checkpoint.restore(manager, abstract, kind=CHECKPOINT_KIND)
    assert saved["lengths"] == [3, 4] and saved["seeds"] == [0, 1] and saved["model"] == "lstm"
    assert np.asarray(state.epoch).tolist() == [2, 2, 2, 2]
    with pytest.raises(_cli.UserError, match="not a 'gan'"):
        checkpoint.restore(manager, abstract, kind="gan")


@pytest.mark.parametrize("flags, message", [
    (["--lengths", "0"], "input length 0 is out of range"),
    (["--lengths", "-1"], "input length -1 is out of range"),
    (["--lengths", "101"], "input length 101 is out of range"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--epochs", "-3"], "epochs must be at least 1"),
    (["--seeds", "0"], "seeds must be at least 1"),
])
def test_bad_settings_are_one_sentence_and_exit_2(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(script.main, [*flags, "--workdir", str(tmp_path / "w"),
                               "--checkpoint-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "w").exists()  # nothing written before the input was checked


@pytest.mark.parametrize("flags", [["--lengths", "ten"], ["--encoding", "binary"], ["--models", "gru"],
                                   ["--batch-size", "0"], ["--lr", "-1"]])
def test_malformed_flags_are_rejected_by_argparse(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(script.main, flags)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so permissions cannot be tested")
def test_unwritable_workdir_is_one_sentence(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SystemExit):
        _cli.run(script.main, ["--workdir", str(locked / "w"), "--checkpoint-dir", str(tmp_path / "c")])
    assert "cannot create directory" in capsys.readouterr().err


def test_workdir_that_is_a_file_is_one_sentence(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(script.main, ["--workdir", str(blocker / "w"), "--checkpoint-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot create directory" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"

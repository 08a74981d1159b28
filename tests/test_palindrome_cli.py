"""experiments.palindrome end to end on tiny settings: outputs, checkpoints, resuming, signals, the lock."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from script_runs import run_script

from experiments import _cli
from experiments import palindrome as script
from jaxgan.palindrome import train as palindrome_train
from jaxgan.palindrome.steps import METRICS, run_config
from jaxgan.palindrome.train import KIND as CHECKPOINT_KIND
from jaxgan.palindrome.train import sweep_target
from jaxgan.runtime import checkpoint

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

    # A checkpoint after every chunk (of 1 epoch); the newest holds the final stacked state and
    # every epoch's metrics, exactly those of results.json; its config names the sweep.
    assert sorted(p.name for p in (ckdir / "lstm-scalar").iterdir() if p.name.isdigit()) == ["1", "2"]
    config = run_config("lstm", max_length=4, hidden=8, num_examples=64, batch_size=16)
    manager = checkpoint.open_manager(ckdir / "lstm-scalar", create=False)
    state, saved = checkpoint.restore(manager, sweep_target(config, [3, 4], [0, 1], 2), kind=CHECKPOINT_KIND)
    assert saved["lengths"] == [3, 4] and saved["seeds"] == [0, 1] and saved["model"] == "lstm"
    assert np.asarray(state["runs"].epoch).tolist() == [2, 2, 2, 2]
    for name in METRICS:
        assert np.asarray(state["history"][name]).round(6).tolist() == [r[name] for r in runs], name
    with pytest.raises(_cli.UserError, match="not a 'gan'"):
        checkpoint.restore(manager, sweep_target(config, [3, 4], [0, 1], 2), kind="gan")
    manager.close()


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
    assert "cannot create the run folder" in capsys.readouterr().err


def test_workdir_that_is_a_file_is_one_sentence(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(script.main, ["--workdir", str(blocker / "w"), "--checkpoint-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot create the run folder" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


# The rnn sweep of tests/test_palindrome_train.py (TINY, lengths 3 and 6, two seeds, map): the
# same static config, so a session that runs both compiles it once.
RESUME_FLAGS = ["--models", "rnn", "--lengths", "3", "6", "--seeds", "2", "--epochs", "2",
                "--chunk-epochs", "1", "--hidden", "16", "--num-examples", "256", "--batch-size", "32",
                "--sweep-strategy", "map"]


def _run(tmp_path, name, flags, capsys):
    """One in-process CLI run into tmp_path/name/{w,c}; returns (exit code, stdout, stderr)."""
    return run_script(script.main, [*flags, "--workdir", str(tmp_path / name / "w"),
                                    "--checkpoint-dir", str(tmp_path / name / "c")], capsys)


def _sigterm_after_chunks(monkeypatch, when: set[tuple[str, int]]):
    """Makes the study send itself SIGTERM as the chunks ``(label, epochs done)`` finish training."""
    real = palindrome_train.sweep_chunks

    def chunks(runs, data, config, epochs, **kwargs):
        """The real chunks; a real SIGTERM to this process at the chosen ones."""
        for done, trained, metrics in real(runs, data, config, epochs, **kwargs):
            if (f"{config.model}/{config.encoding}", done) in when:
                os.kill(os.getpid(), signal.SIGTERM)
            yield done, trained, metrics

    monkeypatch.setattr(palindrome_train, "sweep_chunks", chunks)


def test_sigterm_checkpoints_exits_143_and_the_next_run_resumes_to_the_same_results(tmp_path, monkeypatch,
                                                                                   capsys):
    flags = [*RESUME_FLAGS, "--encoding", "both"]
    assert _run(tmp_path, "straight", flags, capsys)[0] == 0
    # Mid-sweep: SIGTERM during the first chunk of rnn/scalar stops after that chunk's checkpoint.
    _sigterm_after_chunks(monkeypatch, {("rnn/scalar", 1)})
    code, _, err = _run(tmp_path, "chain", flags, capsys)
    assert code == 128 + signal.SIGTERM
    where = tmp_path / "chain" / "c" / "rnn-scalar"
    assert err.strip().splitlines()[-1] == (
        f"stopped: SIGTERM received: saved rnn/scalar at epoch 1 in {where}; the same command resumes "
        f"from there")
    assert not (tmp_path / "chain" / "w" / "results.json").exists()
    # Between sweeps: SIGTERM in the last chunk of rnn/scalar stops before rnn/onehot starts.
    _sigterm_after_chunks(monkeypatch, {("rnn/scalar", 2)})
    code, out, err = _run(tmp_path, "chain", flags, capsys)
    assert code == 128 + signal.SIGTERM
    assert f"rnn/scalar: resuming at epoch 1 of 2 (checkpoint in {where})" in out
    assert "stopped: SIGTERM received: saved rnn/scalar at epoch 2" in err
    assert not (tmp_path / "chain" / "c" / "rnn-onehot").exists()
    monkeypatch.undo()
    code, out, _ = _run(tmp_path, "chain", flags, capsys)
    assert code == 0 and f"rnn/scalar: resuming at epoch 2 of 2 (checkpoint in {where})" in out
    results = [json.loads((tmp_path / name / "w" / "results.json").read_text())
               for name in ("straight", "chain")]
    assert results[0] == results[1]  # every metric of every epoch, bit for bit after rounding
    assert (tmp_path / "straight" / "w" / "summary.md").read_text() == (
        tmp_path / "chain" / "w" / "summary.md").read_text()


def test_a_non_finite_loss_stops_without_saving_and_names_the_epoch_and_checkpoint(tmp_path, monkeypatch,
                                                                                  capsys):
    real = palindrome_train.sweep_chunks

    def chunks(*args, **kwargs):
        """The real chunks, with run 3's training loss of epoch 2 turned into NaN."""
        for done, trained, metrics in real(*args, **kwargs):
            if done == 2:
                metrics = {**metrics, "train_loss": metrics["train_loss"].copy()}
                metrics["train_loss"][3, -1] = np.nan
            yield done, trained, metrics

    monkeypatch.setattr(palindrome_train, "sweep_chunks", chunks)
    code, _, err = _run(tmp_path, "nan", RESUME_FLAGS, capsys)
    ck = tmp_path / "nan" / "c" / "rnn-scalar"
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: train_loss of rnn/scalar at T=6, seed 1 became nan in epoch 2, so training stopped "
        f"without saving; the checkpoint at epoch 1 in {ck} holds the last good state")
    assert sorted(p.name for p in ck.iterdir() if p.name.isdigit()) == ["1"]  # intact, and nothing newer
    assert not (tmp_path / "nan" / "w" / "results.json").exists()


def test_a_second_run_on_a_locked_checkpoint_directory_refuses(tmp_path, capsys):
    ck = tmp_path / "run" / "c"
    ck.mkdir(parents=True)
    with checkpoint.lock(ck):
        code, _, err = _run(tmp_path, "run", RESUME_FLAGS, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: another run (process {os.getpid()}) is using {ck}; wait for it to finish, or choose another "
        f"folder"]
    assert list(ck.iterdir()) == [ck / checkpoint.LOCK_NAME]


def test_a_sweep_whose_checkpoints_are_all_damaged_stops_and_keeps_them(tmp_path, capsys):
    sweep_dir = tmp_path / "run" / "c" / "rnn-scalar"
    (sweep_dir / "1").mkdir(parents=True)  # a checkpoint with nothing in it
    code, _, err = _run(tmp_path, "run", RESUME_FLAGS, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: none of the checkpoints in {sweep_dir} can be restored (steps 1)")
    assert any(line.startswith("warning: the checkpoint at step 1") for line in lines)
    assert (sweep_dir / "1").is_dir() and not (sweep_dir / checkpoint.DAMAGED_DIR).exists()


def _truncate_state(step_dir) -> None:
    """Cuts every array data file of a checkpoint to 10 bytes."""
    for path in step_dir.glob("state/**/d/*"):
        path.write_bytes(path.read_bytes()[:10])


def _sweep_steps(sweep_dir) -> list[int]:
    """The finished checkpoint steps (epochs) of one sweep's folder."""
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit())


def _restore_every_step(sweep_dir, epochs: int) -> dict[int, dict]:
    """Every checkpoint of the RESUME_FLAGS rnn sweep of ``epochs``, restored (UserError if one fails)."""
    config = run_config("rnn", max_length=6, hidden=16, num_examples=256, batch_size=32)
    target = sweep_target(config, [3, 6], [0, 1], epochs)
    manager = checkpoint.open_manager(sweep_dir, create=False)
    try:
        return {step: checkpoint.restore(manager, target, kind=CHECKPOINT_KIND, step=step)[0]
                for step in _sweep_steps(sweep_dir)}
    finally:
        manager.close()


def test_restart_over_wholly_damaged_checkpoints_saves_every_chunk_again(tmp_path, capsys):
    assert _run(tmp_path, "run", RESUME_FLAGS, capsys)[0] == 0
    sweep_dir = tmp_path / "run" / "c" / "rnn-scalar"
    assert _sweep_steps(sweep_dir) == [1, 2]
    for step in (1, 2):
        _truncate_state(sweep_dir / str(step))
    code, _, err = _run(tmp_path, "run", RESUME_FLAGS, capsys)
    assert code == 2 and err.count("cannot be restored") == 2 and "--restart starts the run over" in err
    code, _, err = _run(tmp_path, "run", [*RESUME_FLAGS, "--restart"], capsys)
    assert code == 0, err
    assert "cannot be restored" not in err
    # The damaged sweep was moved aside whole with its checkpoint directory, never deleted.
    moved = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("c.replaced-")]
    assert len(moved) == 1 and _sweep_steps(moved[0] / "rnn-scalar") == [1, 2]
    states = _restore_every_step(sweep_dir, 2)
    assert sorted(states) == [1, 2]
    assert [np.asarray(s["runs"].epoch).tolist() for s in states.values()] == [[1] * 4, [2] * 4]


def test_a_sweep_resumed_past_a_damaged_checkpoint_and_stopped_holds_every_chunk_it_saved(
        tmp_path, monkeypatch, capsys):
    flags = [*RESUME_FLAGS[:RESUME_FLAGS.index("--epochs")], "--epochs", "5",
             *RESUME_FLAGS[RESUME_FLAGS.index("--epochs") + 2:], "--keep-checkpoints", "3"]
    sweep_dir = tmp_path / "run" / "c" / "rnn-scalar"
    _sigterm_after_chunks(monkeypatch, {("rnn/scalar", 3)})
    code, _, err = _run(tmp_path, "run", flags, capsys)
    assert code == 128 + signal.SIGTERM and _sweep_steps(sweep_dir) == [1, 2, 3], err
    _truncate_state(sweep_dir / "3")
    # Resumed from epoch 2 (epoch 3 set aside), told to save after epochs 3 and 4, stopped after 4.
    monkeypatch.undo()
    _sigterm_after_chunks(monkeypatch, {("rnn/scalar", 4)})
    code, out, err = _run(tmp_path, "run", flags, capsys)
    assert code == 128 + signal.SIGTERM, err
    assert f"rnn/scalar: resuming at epoch 2 of 5 (checkpoint in {sweep_dir})" in out
    assert f"stopped: SIGTERM received: saved rnn/scalar at epoch 4 in {sweep_dir}" in err
    states = _restore_every_step(sweep_dir, 5)
    assert sorted(states) == [2, 3, 4]
    assert [np.asarray(s["runs"].epoch).tolist() for s in states.values()] == [[2] * 4, [3] * 4, [4] * 4]
    assert (sweep_dir / checkpoint.DAMAGED_DIR / "3").is_dir()


def test_a_finished_study_continues_to_a_larger_epochs_total_exactly(tmp_path, capsys):
    """--epochs is the total: a study finished at 2 epochs goes on to 3 and ends bit for bit where a
    3-epoch study from the start ends (results, summary, final checkpoint)."""
    epochs_at = RESUME_FLAGS.index("--epochs") + 1
    flags = lambda epochs: [*RESUME_FLAGS[:epochs_at], str(epochs), *RESUME_FLAGS[epochs_at + 1:]]
    assert _run(tmp_path, "straight", flags(3), capsys)[0] == 0
    assert _run(tmp_path, "chain", flags(2), capsys)[0] == 0
    code, out, _ = _run(tmp_path, "chain", flags(3), capsys)
    where = tmp_path / "chain" / "c" / "rnn-scalar"
    assert code == 0 and f"rnn/scalar: resuming at epoch 2 of 3 (checkpoint in {where})" in out
    names = ("straight", "chain")
    results = [json.loads((tmp_path / name / "w" / "results.json").read_text()) for name in names]
    assert results[0] == results[1]
    assert (tmp_path / "straight" / "w" / "summary.md").read_text() == (
        tmp_path / "chain" / "w" / "summary.md").read_text()
    target = sweep_target(run_config("rnn", max_length=6, hidden=16, num_examples=256, batch_size=32),
                          [3, 6], [0, 1], 3)
    states = []
    for name in names:
        manager = checkpoint.open_manager(tmp_path / name / "c" / "rnn-scalar", create=False)
        states.append(checkpoint.restore(manager, target, kind=CHECKPOINT_KIND, step=3)[0])
        manager.close()
    jax.tree.map(np.testing.assert_array_equal, *states)
    # Asking for fewer epochs than a checkpoint holds is refused in one sentence.
    code, _, err = _run(tmp_path, "chain", flags(2), capsys)
    assert code == 2 and "is at epoch 3, beyond the 2 epochs asked for" in err


def test_the_cache_folder_is_the_users_unless_told_otherwise(monkeypatch, tmp_path):
    """JAXGAN_COMPILATION_CACHE names the folder, 0 (or off) turns the cache off; by default it is
    under the user's cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(_cli.CACHE_ENV, raising=False)
    assert _cli.compilation_cache_dir() == str(tmp_path / "jaxgan" / "jax-compilation")
    monkeypatch.setenv(_cli.CACHE_ENV, str(tmp_path / "mine"))
    assert _cli.compilation_cache_dir() == str(tmp_path / "mine")
    for off in ("0", "off", "OFF", "false"):
        monkeypatch.setenv(_cli.CACHE_ENV, off)
        assert _cli.compilation_cache_dir() is None and _cli.use_compilation_cache() is None


def test_the_scripts_keep_compiled_programs(tmp_path, subprocess_env):
    """From the command line a script keeps its compiled programs in the folder JAXGAN_COMPILATION_CACHE
    names (JAX's persistent compilation cache)."""
    cache = tmp_path / "cache"
    env = {k: v for k, v in subprocess_env.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR")  # the test session's own cache: the script's is under test
    env["JAXGAN_COMPILATION_CACHE"] = str(cache)
    flags = ["--models", "rnn", "--lengths", "3", "--seeds", "1", "--epochs", "1", "--hidden", "4",
             "--num-examples", "32", "--batch-size", "8"]
    done = subprocess.run([sys.executable, "-m", "experiments.palindrome", *flags, "--workdir",
                           str(tmp_path / "w"), "--checkpoint-dir", str(tmp_path / "c")], env=env,
                          cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert cache.is_dir() and any(cache.iterdir())

"""Damaged checkpoints, leftovers of killed saves, the checkpoint-directory lock and deferred signals."""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from script_runs import run_script

from experiments import _cli, train_gan
from jaxgan.configs.base import from_record
from jaxgan.configs.gan import KIND as GAN_KIND
from jaxgan.configs.gan import GANConfig
from jaxgan.errors import UserError
from jaxgan.gan import train as gan_train
from jaxgan.gan.steps import GANState, checkpoint_tree, from_checkpoint, init_state
from jaxgan.runtime import checkpoint, loop, signals

# A restore that fails on a truncated file leaves an Orbax coroutine behind that later finds its
# event loop closed; that is Orbax's noise about the damage the tests inflict on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _state(scale: float) -> dict:
    """A small pytree whose values say which step wrote it."""
    return {"w": jnp.arange(300.0) * scale, "b": {"c": jnp.ones((7, 5)) * scale}}


ABSTRACT = jax.eval_shape(lambda: _state(1.0))


@pytest.fixture
def three_steps(tmp_path) -> pathlib.Path:
    """A checkpoint directory holding steps 1, 2 and 3."""
    manager = checkpoint.open_manager(tmp_path / "ck")
    for step in (1, 2, 3):
        checkpoint.save(manager, step, _state(step), {"kind": "toy", "size": 300})
    manager.wait_until_finished()
    manager.close()
    return tmp_path / "ck"


def _restore(directory, **kwargs):
    """restore_latest_good on a fresh manager, returning (result, warning messages)."""
    manager = checkpoint.open_manager(directory)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = checkpoint.restore_latest_good(manager, ABSTRACT, kind="toy", **kwargs)
    finally:
        manager.close()
    return found, [str(w.message) for w in caught if issubclass(w.category, checkpoint.CheckpointWarning)]


def _truncate_data(step_dir: pathlib.Path) -> None:
    """Cuts every array data file of a checkpoint to half its length."""
    for path in step_dir.glob("state/**/d/*"):
        if path.is_file():
            with open(path, "r+b") as f:
                f.truncate(path.stat().st_size // 2)


def _delete_data(step_dir: pathlib.Path) -> None:
    """Deletes every array data file of a checkpoint."""
    for path in step_dir.glob("state/**/d/*"):
        path.unlink()


@pytest.mark.parametrize("damage", [
    _truncate_data,
    _delete_data,
    lambda d: (d / "config" / "metadata").unlink(),
    lambda d: (d / "config" / "metadata").write_text(""),
], ids=["truncated-data", "deleted-data", "deleted-config", "empty-config"])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning_and_kept(three_steps, damage):
    damage(three_steps / "3")
    found, messages = _restore(three_steps, set_aside=True)
    state, config, step = found
    assert step == 2 and config["kind"] == "toy"
    np.testing.assert_array_equal(state["w"], _state(2.0)["w"])
    assert any("step 3" in m and "cannot be restored" in m for m in messages)
    assert any("moved" in m and "damaged" in m for m in messages)
    assert not (three_steps / "3").exists() and (three_steps / "damaged" / "3").is_dir()  # kept, not deleted
    # A new save of the damaged step's number now works, and the next resume takes it.
    manager = checkpoint.open_manager(three_steps)
    checkpoint.save(manager, 3, _state(3.0), {"kind": "toy", "size": 300})
    manager.wait_until_finished()
    manager.close()
    found, messages = _restore(three_steps, set_aside=True)
    assert found[2] == 3 and not messages


def test_only_a_failed_restore_pays_for_a_garbage_collection(three_steps, monkeypatch):
    """A full ``gc.collect`` (what finalises the reads a failed Orbax restore abandons) takes a good
    part of a second in a large process, so a restore that succeeds, and a run loop whose restores
    all succeed, must not run one; a failed restore runs one, inside the noise filters."""
    collections = []
    monkeypatch.setattr(checkpoint.gc, "collect", lambda *a: collections.append(sys.unraisablehook))
    hook = sys.unraisablehook
    found, messages = _restore(three_steps)
    assert found[2] == 3 and not messages and collections == []
    with loop.open_run(three_steps, label="toy", record={"kind": "toy", "size": 300}, kind="toy",
                       abstract=ABSTRACT, keep=5) as run:
        assert run.start == 3
    assert collections == []
    _truncate_data(three_steps / "3")
    found, messages = _restore(three_steps)
    assert found[2] == 2 and any("step 3" in m for m in messages)
    assert len(collections) == 1 and collections[0] is not hook  # collected with the filter in place
    assert sys.unraisablehook is hook


def test_a_restores_quiet_block_inside_a_runs_keeps_the_runs_filter():
    """A run's block stays quiet after a restore's block inside it ends: reads a failed restore
    abandoned can be finalised later in the run, and their asyncio log records are dropped then too."""
    logger = logging.getLogger("asyncio")
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1,
                               "Task exception was never retrieved\nfuture: <Task finished>", None, None)
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", None, None)
    with checkpoint.quiet_failed_restores():
        with checkpoint.quiet_failed_restores():
            assert not logger.filter(record)
        assert not logger.filter(record) and logger.filter(other)
    assert logger.filter(record)


def test_a_lost_tree_description_is_not_damage_when_the_data_is_whole(three_steps):
    # state/_METADATA describes the saved tree; the restore target (shapes, dtypes and where
    # each leaf goes) already says all of that, so the intact data restores exactly.
    (three_steps / "3" / "state" / "_METADATA").unlink()
    found, messages = _restore(three_steps, set_aside=True)
    state, _, step = found
    assert step == 3 and not messages
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(_state(3.0)), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_leftover_temporary_directory_is_reported_and_ignored(three_steps):
    leftover = three_steps / "4.orbax-checkpoint-tmp-1234567"
    leftover.mkdir()
    (leftover / "state").mkdir()
    found, messages = _restore(three_steps)  # without set_aside nothing moves
    assert found[2] == 3 and leftover.is_dir()
    assert len(messages) == 1 and str(leftover) in messages[0] and "interrupted" in messages[0]
    found, messages = _restore(three_steps, set_aside=True)
    assert found[2] == 3 and not leftover.exists()
    assert (three_steps / "damaged" / leftover.name).is_dir()


def test_when_no_checkpoint_restores_it_says_so_and_starts_fresh_only_if_asked(three_steps):
    for step in (1, 2, 3):
        _truncate_data(three_steps / str(step))
    with pytest.raises(checkpoint.NoGoodCheckpoint, match=r"none of the checkpoints .* \(steps 3, 2, 1\)"):
        _restore(three_steps, set_aside=True)
    assert sorted(p.name for p in three_steps.iterdir() if p.name.isdigit()) == ["1", "2", "3"]  # untouched
    found, messages = _restore(three_steps, set_aside=True, restart=True)
    assert found is None and len([m for m in messages if "cannot be restored" in m]) == 3
    assert sorted(p.name for p in (three_steps / "damaged").iterdir()) == ["1", "2", "3"]


def test_a_checkpoint_of_other_settings_is_an_error_not_damage(three_steps):
    manager = checkpoint.open_manager(three_steps)
    try:
        with pytest.raises(UserError, match="size=300, but this run has size=10"):
            checkpoint.restore_latest_good(manager, ABSTRACT, kind="toy", must_match={"size": 10})
        with pytest.raises(UserError, match="not a 'gan' one"):
            checkpoint.restore_latest_good(manager, ABSTRACT, kind="gan")
    finally:
        manager.close()
    assert not (three_steps / "damaged").exists()


def test_the_lock_refuses_a_second_holder_and_is_released_on_exit_or_error(tmp_path):
    with checkpoint.lock(tmp_path) as path:
        assert pathlib.Path(path).read_text().strip() == str(os.getpid())
        with pytest.raises(UserError, match=rf"another run \(process {os.getpid()}\) is using"):
            with checkpoint.lock(tmp_path):
                pass
    with pytest.raises(RuntimeError):
        with checkpoint.lock(tmp_path):
            raise RuntimeError("boom")
    with checkpoint.lock(tmp_path):  # released after the error
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    # A child takes the lock and is killed with SIGKILL: the lock file still names it.
    code = ("import os, sys, time; from jaxgan.runtime import checkpoint\n"
            "with checkpoint.lock(sys.argv[1]):\n    print('held', flush=True); os.kill(os.getpid(), 9)\n")
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -9 and "held" in child.stdout
    assert (tmp_path / checkpoint.LOCK_NAME).read_text().strip().isdigit()
    with checkpoint.lock(tmp_path) as path:
        assert pathlib.Path(path).read_text().strip() == str(os.getpid())


def test_train_gan_refuses_a_locked_directory_and_a_wholly_damaged_one(tmp_path, capsys):
    args = ["--dataset", "digits", "--limit-images", "128", "--epochs", "1",
            "--workdir", str(tmp_path / "run"), "--checkpoint-dir", str(tmp_path / "ck")]
    (tmp_path / "ck").mkdir()
    with checkpoint.lock(tmp_path / "ck"):
        with pytest.raises(SystemExit) as exit_info:
            _cli.run(train_gan.main, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: another run (process {os.getpid()}) is using {tmp_path / 'ck'}; wait for it "
                   f"to finish, or choose another folder"]
    assert not (tmp_path / "run").exists()  # refused: no run folder was made
    # A checkpoint directory whose only checkpoint is damaged: one sentence, nothing moved.
    (tmp_path / "ck" / "5").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(train_gan.main, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: none of the checkpoints in") and "(steps 5)" in err[-1]
    assert any(line.startswith("warning: the checkpoint at step 5") for line in err)
    assert "--restart starts the run over" in err[-1]
    assert (tmp_path / "ck" / "5").is_dir() and not (tmp_path / "run").exists()
    assert not (tmp_path / "ck" / "run.json").exists()  # the refused run claimed nothing


def test_the_three_trainers_share_one_run_loop_and_its_signals():
    from jaxgan.classifier import train as classifier_train
    from jaxgan.gan import train as gan_train
    from jaxgan.palindrome import train as palindrome_train

    assert gan_train.loop is classifier_train.loop is palindrome_train.loop is loop
    assert loop.Interrupted is signals.Interrupted and palindrome_train.signals is signals


def test_sigint_and_sigterm_are_deferred_once_then_handled_as_before():
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background job
    # starts with SIGINT ignored, and "as before" would then be: ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with signals.deferred_signals() as received:
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == [signal.SIGTERM]  # noted, not fatal: the epoch loop stops at its end
            with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C interrupts at once
                os.kill(os.getpid(), signal.SIGINT)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGINT, inherited)


# --- no save is skipped without a word ---


def test_a_save_the_manager_declines_stops_with_one_sentence(three_steps):
    # Step 3 moved away behind the manager's back: its cached list still holds 3, so Orbax's
    # own save returns False for any step up to 3 and writes nothing.
    manager = checkpoint.open_manager(three_steps)
    try:
        os.rename(three_steps / "3", three_steps / "elsewhere")
        declined = (r"the checkpoint at step 3 in .* was not written: Orbax declined to save it "
                    r"\(it lists steps 1, 2, 3")
        with pytest.raises(checkpoint.SaveFailed, match=declined):
            checkpoint.save(manager, 3, _state(3.0), {"kind": "toy", "size": 300})
        assert not (three_steps / "3").exists()
    finally:
        manager.close()


def test_a_save_whose_step_is_missing_once_complete_stops_with_one_sentence(three_steps):
    manager = checkpoint.open_manager(three_steps)
    try:
        checkpoint.save(manager, 4, _state(4.0), {"kind": "toy", "size": 300})
        manager.wait_until_finished()
        os.rename(three_steps / "4", three_steps / "elsewhere")  # gone before the run looked
        with pytest.raises(checkpoint.SaveFailed, match=r"the checkpoint at step 4 in .* is missing after"):
            checkpoint.confirm_saved(manager, 4)
    finally:
        manager.close()


def test_what_is_set_aside_no_longer_blocks_saves_or_counts_for_retention(three_steps):
    for step in (1, 2, 3):
        _truncate_data(three_steps / str(step))
    manager = checkpoint.open_manager(three_steps, max_to_keep=3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", checkpoint.CheckpointWarning)
            assert checkpoint.restore_latest_good(manager, ABSTRACT, kind="toy", set_aside=True,
                                                  restart=True) is None
        # The same manager, as a run uses it: every step is saved again, and the newest three kept.
        for step in (1, 2, 3, 4):
            checkpoint.save(manager, step, _state(float(step)), {"kind": "toy", "size": 300})
        checkpoint.confirm_saved(manager, 4)
    finally:
        manager.close()
    assert sorted(int(p.name) for p in three_steps.iterdir() if p.name.isdigit()) == [2, 3, 4]
    for step in (2, 3, 4):
        manager = checkpoint.open_manager(three_steps, create=False)
        state, _ = checkpoint.restore(manager, ABSTRACT, kind="toy", step=step)
        manager.close()
        np.testing.assert_array_equal(state["w"], _state(float(step))["w"])


def _write_idx(folder: pathlib.Path, count: int) -> pathlib.Path:
    """A tiny IDX training split of random 28x28 images (loads in milliseconds)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(
        np.array([2051, count, 28, 28], ">u4").tobytes() + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(
        np.array([2049, count], ">u4").tobytes() + rng.integers(0, 10, count, dtype=np.uint8).tobytes())
    return folder


def _gan_run(tmp_path, flags, capsys) -> tuple[int, str, str]:
    """One in-process train_gan run on 32 random images (2 steps an epoch); (exit code, stdout, stderr)."""
    data = tmp_path / "data"
    if not data.exists():
        _write_idx(data, 32)
    return run_script(train_gan.main, ["--dataset", f"idx:{data}", "--batch-size", "16", "--sample-every",
                                       "8", "--checkpoint-every", "1", "--workdir", str(tmp_path / "run"),
                                       "--checkpoint-dir", str(tmp_path / "ck"), *flags], capsys)


def _steps_of(directory: pathlib.Path) -> list[int]:
    """The finished checkpoint steps in a directory."""
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _gan_states(directory: pathlib.Path) -> dict[int, GANState]:
    """Every checkpoint of a GAN directory, restored (a UserError if one does not restore)."""
    manager = checkpoint.open_manager(directory, create=False)
    try:
        states = {}
        for step in _steps_of(directory):
            _, record = checkpoint.read_config(manager, step)
            config = from_record(GANConfig, record)
            abstract = checkpoint_tree(jax.eval_shape(lambda c=config: init_state(c)))
            tree, _ = checkpoint.restore(manager, abstract, kind=GAN_KIND, step=step)
            states[step] = from_checkpoint(tree, config)
        return states
    finally:
        manager.close()


def test_train_gan_restarted_over_wholly_damaged_checkpoints_saves_every_one_again(tmp_path, capsys):
    assert _gan_run(tmp_path, ["--epochs", "2"], capsys)[0] == 0
    ck = tmp_path / "ck"
    assert _steps_of(ck) == [2, 4]
    for step in (2, 4):
        _truncate_data(ck / str(step))
    code, out, err = _gan_run(tmp_path, ["--epochs", "2"], capsys)
    assert code == 2 and err.count("cannot be restored") == 2 and "--restart starts the run over" in err
    code, out, err = _gan_run(tmp_path, ["--epochs", "2", "--restart"], capsys)
    assert code == 0, err
    assert "cannot be restored" not in err and f"checkpoints: {ck}" in out
    # The damaged checkpoints were moved aside whole, with the run folder, never deleted.
    moved = {p.name.split(".replaced-")[0]: p for p in tmp_path.iterdir() if ".replaced-" in p.name}
    assert sorted(moved) == ["ck", "run"] and _steps_of(moved["ck"]) == [2, 4]
    # Both checkpoints were written again, and restore: the run's claim holds.
    states = _gan_states(ck)
    assert sorted(states) == [2, 4] and [int(s.step) for s in states.values()] == [2, 4]
    from experiments import sample

    _cli.run(sample.main, ["--gan-dir", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "s.npy")])
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()


def _sigterm_after_epoch(monkeypatch, epoch: int) -> None:
    """Makes train_gan send itself a real SIGTERM as it writes the given epoch's log."""
    real = gan_train._write_epoch

    def write_epoch(*args, **kwargs):
        """The real writer; then SIGTERM at the chosen epoch."""
        bad = real(*args, **kwargs)
        if kwargs["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return bad

    monkeypatch.setattr(gan_train, "_write_epoch", write_epoch)


def test_train_gan_resumed_past_a_damaged_checkpoint_and_stopped_holds_every_step_it_saved(
        tmp_path, monkeypatch, capsys):
    flags = ["--epochs", "6", "--keep-checkpoints", "3"]
    _sigterm_after_epoch(monkeypatch, 3)
    code, _, err = _gan_run(tmp_path, flags, capsys)
    ck = tmp_path / "ck"
    assert code == 128 + signal.SIGTERM and _steps_of(ck) == [2, 4, 6], err
    _truncate_data(ck / "6")
    # Resumed from step 4 (step 6 set aside), told to save at steps 6 and 8, stopped after 8.
    monkeypatch.undo()
    _sigterm_after_epoch(monkeypatch, 4)
    code, out, err = _gan_run(tmp_path, flags, capsys)
    assert code == 128 + signal.SIGTERM, err
    assert f"gan: resuming at epoch 2 of 6 (step 4, checkpoint in {ck})" in out
    assert "stopped: SIGTERM received: saved a checkpoint at step 8 " in err
    states = _gan_states(ck)
    assert sorted(states) == [4, 6, 8] and [int(s.step) for s in states.values()] == [4, 6, 8]
    assert (ck / checkpoint.DAMAGED_DIR / "6").is_dir()

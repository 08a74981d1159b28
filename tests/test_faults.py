"""Fault injection on the real command line: train_gan killed (SIGKILL, SIGTERM) and restarted.

One uninterrupted run and one interrupted chain run side by side as subprocesses on tiny
settings (128 digits, 2 steps an epoch, 8 epochs, a checkpoint every epoch). The chain
is interrupted at six moments (five SIGKILLs, one SIGTERM), its newest checkpoint is
damaged once, and it is restarted with the same command until it finishes; both must end
in the same parameters, optimiser state and metrics log. Compiled programs go through a
persistent JAX cache so that only the first processes pay for compilation. Seven processes
start one after another, so this is marked ``slow`` (about 1 to 2.5 minutes on two
cores): ``pytest -m "not slow"`` skips it.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxgan import checkpoint, jsonl
from jaxgan.train import gan

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
EPOCHS, STEPS_PER_EPOCH = 8, 2


def _command(run_dir: pathlib.Path) -> list[str]:
    """The train_gan command of one run, writing into run_dir/{run,ck}."""
    return [sys.executable, "-m", "experiments.train_gan", "--dataset", "digits", "--limit-images", "128",
            "--epochs", str(EPOCHS), "--checkpoint-every", "1", "--keep-checkpoints", "2",
            "--sample-every", "3", "--workdir", str(run_dir / "run"), "--checkpoint-dir", str(run_dir / "ck")]


def _start(run_dir: pathlib.Path, env: dict) -> subprocess.Popen:
    """Starts the run's command; its output goes to files so that a pipe never blocks it."""
    log = open(run_dir / "log.txt", "a")  # the child writes it; the test reads the file afterwards
    return subprocess.Popen(_command(run_dir), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _steps(ck: pathlib.Path) -> list[int]:
    """The finished checkpoint steps in a directory."""
    return sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) if ck.is_dir() else []


def _wait_for(proc: subprocess.Popen, condition, timeout: float = 120.0, poll: float = 0.002):
    """Polls ``condition`` until it holds (its truthy value) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = condition()
        if seen:
            return seen
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("the run neither reached the moment nor ended")


def _metric_lines(run_dir: pathlib.Path) -> int:
    """Lines (complete or not) in the run's metrics log."""
    path = run_dir / "run" / "metrics.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _moments(chain: pathlib.Path):
    """(name, signal, condition factory) for each interruption; a factory sees the checkpoints at start."""
    ck = chain / "ck"

    def lock_taken(start):
        """The lock file names a process: the run has started, nothing is trained yet."""
        lock = ck / checkpoint.LOCK_NAME
        return lambda: lock.exists() and lock.read_text().strip()

    def new_checkpoint(start):
        """A checkpoint this process wrote has been finalised."""
        return lambda: len(set(_steps(ck)) - set(start)) >= 1

    def during_save(start):
        """An async save's temporary directory exists."""
        # A save of this tiny state can finish between two polls; then the kill lands just after it.
        def condition():
            """What was seen, or False."""
            if any(checkpoint.TMP_MARKER in p.name for p in ck.iterdir()):
                return "caught a save in progress"
            return len(set(_steps(ck)) - set(start)) >= 1 and "missed the save, killed just after it"
        return condition

    def mid_training(start):
        """The metrics log grew: an epoch was written, its checkpoint maybe not yet."""
        lines = _metric_lines(chain)
        return lambda: _metric_lines(chain) > lines  # an epoch's log written, its save maybe not

    def after_delay(start):
        """0.3 s after this process's first new checkpoint: somewhere inside the next epoch."""
        seen = new_checkpoint(start)
        began = []

        def condition():
            """True once the delay has passed."""
            if not began and seen():
                began.append(time.monotonic())
            return bool(began) and time.monotonic() - began[0] > 0.3
        return condition

    return [("startup, lock just taken", signal.SIGKILL, lock_taken),
            ("a temporary directory of an async save exists", signal.SIGKILL, during_save),
            ("an epoch logged, before or during its save", signal.SIGKILL, mid_training),
            ("SIGTERM after a new checkpoint", signal.SIGTERM, new_checkpoint),
            ("a new checkpoint just finished", signal.SIGKILL, new_checkpoint),
            ("0.3 s after a new checkpoint", signal.SIGKILL, after_delay)]


def _restore_final(ck: pathlib.Path):
    """The newest checkpoint's state, restored into the GAN's abstract state."""
    manager = checkpoint.open_manager(ck, create=False)
    try:
        step, record = checkpoint.read_config(manager)
        abstract = jax.eval_shape(lambda: gan.init_state(gan.GANConfig.from_record(record)))
        state, _ = checkpoint.restore(manager, abstract, kind=gan.KIND, step=step)
    finally:
        manager.close()
    return step, state


def test_killed_and_restarted_runs_end_exactly_like_an_uninterrupted_one(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    straight, chain = tmp_path / "straight", tmp_path / "chain"
    straight.mkdir()
    chain.mkdir()
    reference = _start(straight, env)  # runs beside the chain: two processes, two cores
    happened, restarts = [], 0
    damaged = None
    for name, sig, factory in _moments(chain):
        steps = _steps(chain / "ck")
        if damaged is None and len(steps) >= 2:
            # One damaged newest checkpoint on the way: the run must skip it and go one further back.
            damaged = steps[-1]
            for data in (chain / "ck" / str(damaged)).glob("state/**/d/*"):
                data.write_bytes(data.read_bytes()[:10])
        proc = _start(chain, env)
        restarts += 1
        reached = _wait_for(proc, factory(steps))
        if reached:
            proc.send_signal(sig)
        code = proc.wait(timeout=120)
        happened.append((name, reached if isinstance(reached, str) else bool(reached), code))
        if reached and sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        elif reached:  # a graceful stop, or the run had just finished, or it was not yet in train()
            assert code in (0, 128 + sig, -sig), (name, code, (chain / "log.txt").read_text()[-2000:])
    final = _start(chain, env)
    assert final.wait(timeout=180) == 0, (chain / "log.txt").read_text()[-3000:]
    assert reference.wait(timeout=180) == 0, (straight / "log.txt").read_text()[-3000:]
    log = (chain / "log.txt").read_text()
    print(f"{restarts + 1} starts; moments: {json.dumps(happened)}")

    kills = [h for h in happened if h[1]]
    assert len(kills) >= 5, happened
    assert "stopped: SIGTERM received: saved a checkpoint at step" in log
    assert damaged is not None and f"the checkpoint at step {damaged}" in log and "is skipped" in log
    assert (chain / "ck" / checkpoint.DAMAGED_DIR).is_dir()  # and set aside, not deleted

    final_steps = EPOCHS * STEPS_PER_EPOCH
    (step_a, state_a), (step_b, state_b) = _restore_final(straight / "ck"), _restore_final(chain / "ck")
    assert step_a == step_b == final_steps
    assert jax.tree.structure(state_a) == jax.tree.structure(state_b)
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    texts = [(d / "run" / "metrics.jsonl").read_text() for d in (straight, chain)]
    assert texts[0] == texts[1]
    assert texts[1].endswith("\n")
    assert [r["step"] for r in jsonl.read(chain / "run" / "metrics.jsonl")] == list(range(1, final_steps + 1))
    grids = [sorted(p.name for p in (d / "run" / "samples").glob("*.png")) for d in (straight, chain)]
    assert grids[0] == grids[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))

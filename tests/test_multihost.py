"""Several processes: two JAX processes on localhost (CPU collectives over gloo) sweep like one.

tests/multihost_worker.py runs the sweep three times side by side: twice as the two
processes of one distributed run (2 simulated CPU devices each, so 4 in all) and once alone
on one device. The two write one checkpoint together, which this process then restores.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import _cli
from jaxgan.errors import UserError
from jaxgan.palindrome import steps, sweep
from jaxgan.runtime import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import multihost_worker as worker  # noqa: E402  (the worker's settings, read from its module)
from simulated_devices import worker_env  # noqa: E402

TIMEOUT_S = 300


def _free_port() -> int:
    """A TCP port nothing listens on now (the coordinator binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pathlib.Path:
    """The folder where the two-process run and the one-process run left their results."""
    out = tmp_path_factory.mktemp("multihost")
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, str(ROOT / "tests" / "multihost_worker.py"), str(out)]
    procs = [subprocess.Popen([*command, "--coordinator-address", address, "--num-processes", "2",
                               "--process-id", str(i)], cwd=ROOT, env=worker_env(2), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    procs.append(subprocess.Popen(command, cwd=ROOT, env=worker_env(1), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
    try:
        for proc in procs:
            output, _ = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, f"{proc.args[3:]} failed:\n{output[-4000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def _load(path: pathlib.Path) -> dict:
    """One worker's JSON report."""
    return json.loads(path.read_text())


def test_two_processes_split_the_runs_and_sweep_like_one(runs):
    single = _load(runs / "single.json")
    assert (single["processes"], single["devices"]) == (1, 1)
    reports = [_load(runs / f"process{i}.json") for i in range(2)]
    for i, report in enumerate(reports):
        where = (report["process"], report["processes"], report["devices"], report["local_devices"])
        assert where == (i, 2, 4, 2)
        for name, values in single["metrics"].items():  # every process gets every run's metrics
            # equal up to rounding: runs grouped by length share slots differently on 4 devices
            np.testing.assert_allclose(report["metrics"][name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    # one copy of the result files, from process 0; the single process writes the same set
    assert reports[1]["results_written"] == []
    assert "results.json" in single["results_written"]
    assert reports[0]["results_written"] == single["results_written"]
    # 6 runs padded to 8 over 4 devices: each process holds (and trains) its own 4
    assert reports[0]["global_runs"] == 8
    assert reports[0]["local_runs"] == [0, 1, 2, 3] and reports[1]["local_runs"] == [4, 5, 6, 7]


def test_a_signal_to_one_process_stops_every_process_at_the_same_saved_chunk(runs):
    """Process 1 alone gets SIGTERM after the first chunk: both processes stop there (the decision is
    agreed across processes), with one checkpoint of epoch 1 that both wrote, and a second call of each
    resumes it and ends where the one-process study ends."""
    single = _load(runs / "single.json")
    assert single["stopped"] is None
    reports = [_load(runs / f"process{i}.json") for i in range(2)]
    where = runs / "study-distributed" / "rnn-scalar"
    for report in reports:
        message = (f"SIGTERM received: saved rnn/scalar at epoch 1 in {where}; the same command resumes "
                   f"from there")
        assert report["stopped"] == {"signum": 15, "message": message}
        for name, values in single["study_metrics"].items():
            np.testing.assert_allclose(report["study_metrics"][name], values, rtol=1e-5, atol=1e-6,
                                       err_msg=name)
    assert sorted(p.name for p in where.iterdir() if p.name.isdigit()) == ["1", "2"]


def test_checkpoint_of_two_processes_restores_in_one(runs):
    config = steps.run_config("rnn", max_length=6, hidden=8, num_examples=64, batch_size=16)
    seeds = np.asarray([s for _ in worker.LENGTHS for s in worker.SEEDS], np.int32)
    lengths = np.asarray([t for t in worker.LENGTHS for _ in worker.SEEDS], np.int32)
    abstract, _ = jax.eval_shape(lambda: sweep.init_sweep(seeds, lengths, config))
    manager = checkpoint.open_manager(runs / "checkpoint", create=False)
    try:
        # Written from 4 devices of 2 processes, restored with a target that names no devices:
        # checkpoint.restore places every leaf on this process's device.
        state, record = checkpoint.restore(manager, abstract, kind=worker.CHECKPOINT_KIND,
                                           step=worker.EPOCHS)
    finally:
        manager.close()
    assert record["seeds"] == list(worker.SEEDS)
    written, single = np.load(runs / "distributed.npz"), np.load(runs / "single.npz")
    leaves = jax.tree.leaves(state)
    assert len(leaves) == len(written.files) == len(single.files)
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(np.asarray(leaf), written[f"arr_{i}"])  # what the two processes had
        np.testing.assert_allclose(np.asarray(leaf), single[f"arr_{i}"], rtol=1e-5, atol=1e-6)


def _flags(*argv: str) -> argparse.Namespace:
    """The distributed flags parsed as the experiment scripts parse them."""
    parser = argparse.ArgumentParser()
    _cli.add_distributed_flags(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("argv, message", [
    (["--num-processes", "2"], "--coordinator-address and --process-id are missing"),
    (["--coordinator-address", "h:1", "--num-processes", "2"], "--process-id is missing"),
    (["--coordinator-address", "h", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
    (["--coordinator-address", "h:1", "--num-processes", "2", "--process-id", "2"], "out of range"),
    (["--auto-distributed", "--process-id", "0"], "give none of them"),
])
def test_distributed_flags_are_all_or_none_in_one_sentence(argv, message):
    with pytest.raises(UserError, match=message):
        _cli.initialize_distributed(_flags(*argv))


def test_without_distributed_flags_nothing_is_initialised():
    assert _cli.initialize_distributed(_flags()) is False

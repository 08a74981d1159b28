"""Several devices: the sweep split over its runs and the GAN over its batch equal one device's results.

The checks run in fresh processes with 4 simulated CPU devices (tests/parallel_worker.py),
because XLA fixes its device count when JAX starts; the sweep and the GAN run side by side.
XLA's backend optimisations are off there (JAX_DISABLE_MOST_OPTIMIZATIONS): compiling is
most of their time, and each comparison compiles both of its sides the same way.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from jaxgan.runtime import parallel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from simulated_devices import worker_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "parallel_worker.py"
DEVICES = 4
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def reports() -> dict:
    """Both workers' JSON reports, the two started together."""
    procs = {name: subprocess.Popen([sys.executable, str(WORKER), name], cwd=ROOT, env=worker_env(DEVICES),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("sweep", "gan", "gan_sweep")}
    out = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, f"{name} worker failed:\n{stderr[-4000:]}"
            out[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def test_sweep_on_four_devices_equals_one_device(reports):
    sweep = reports["sweep"]
    assert sweep["device_count"] == DEVICES
    # 6 runs do not divide over 4 devices: padded to 8 inside, the real 6 come back
    assert sweep["metric_shape"] == [6, 2] and sweep["state_runs"] == 6
    # Runs grouped by length: on one device the length-3 runs scan 3 steps; on 4 one of them
    # shares a slot with length-6 runs and scans 6, three of them padding that leaves its carry
    # alone. Only the rounding of sums over time may differ.
    assert sweep["metrics"]["rel"] < 1e-5, sweep["metrics"]
    assert sweep["state"]["rel"] < 1e-5, sweep["state"]
    assert sweep["direct_call_equal"]


def test_sweep_state_and_data_are_split_over_the_devices(reports):
    for name in ("runs_placement", "data_placement"):
        placed = reports["sweep"][name]
        assert placed["devices"] == DEVICES, placed
        assert placed["spec"] == f"P('{parallel.AXIS}',)", placed
        assert [shape[0] for shape in placed["shard_shapes"]] == [2], placed  # 8 padded runs / 4 devices


def test_gan_sweep_on_four_devices_equals_one_device(reports):
    report = reports["gan_sweep"]
    assert report["device_count"] == DEVICES
    # Each device trains its own GAN with the one-device program's arithmetic: nothing may differ.
    assert report["map"] == {"abs": 0.0, "rel": 0.0}, report
    # Batched, each device holds a batch of one run, whose kernels round otherwise than the batch of
    # four on one device; Adam turns rounding of a gradient near 0 into a step of up to the learning
    # rate (largest here 4e-4; measured after 8 steps: 1.2e-4), so the bound is two of those.
    assert report["vmap"]["abs"] < 2 * 4e-4, report
    for strategy in ("map", "vmap"):
        placed = report[f"{strategy}_placement"]
        assert placed["devices"] == DEVICES and placed["spec"] == f"P('{parallel.AXIS}',)", placed
        assert [shape[0] for shape in placed["shard_shapes"]] == [1], placed


def test_gan_epoch_data_parallel_equals_one_device(reports):
    gan = reports["gan"]
    assert gan["device_count"] == DEVICES
    # Split sums (batch-norm statistics and gradients as all-reduces) round differently, no more.
    assert gan["outputs"]["abs"] < 1e-4, gan["outputs"]  # per-step metrics and the eval-mode grids
    assert gan["state"]["abs"] < 1e-6 and gan["state"]["rel"] < 1e-3, gan["state"]
    # A bias feeding a batch norm has a true gradient of 0: Adam turns its rounding noise into
    # steps of up to about the learning rate, so two reduction orders part by at most that per step.
    assert gan["pre_batch_norm_leaves"] > 0
    bound = gan["learning_rate"] * gan["steps"]
    assert gan["state_pre_batch_norm"]["abs"] < bound, gan["state_pre_batch_norm"]


def test_gan_batch_is_split_and_parameters_replicated(reports):
    gan = reports["gan"]
    # each device multiplies its quarter of the batch; batch-norm means and gradients are all-reduced
    assert gan["split_generator_matmul"] and not gan["whole_generator_matmul"]
    assert gan["all_reduces"] > 0
    placed = gan["state_placement"]
    assert placed["devices"] == DEVICES and placed["spec"] == "P()", placed  # whole on every device
    assert "cannot be split evenly over 4 devices" in gan["indivisible_batch"]


def test_one_device_mesh_is_the_plain_path():
    import jax

    assert not parallel.is_parallel(parallel.make_mesh(jax.devices()[:1]))
    assert not parallel.is_parallel(None)

"""The accelerator check runs anywhere: on this CPU, tiny, its steps pass and the JSON holds each.

The study step (``reproduce --tiny``) is the run ``tests/test_reproduce.py`` makes once for all its
tests; ``test_the_device_check_reads_the_studys_report`` there checks what this check reads of it."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from benchmarks import device_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_device_check_runs_its_steps_and_writes_its_json_and_log(tmp_path, subprocess_env):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_check", "--tiny", "--dataset", "digits",
                           "--out", str(out), "--only", "tests", "benchmark"], cwd=ROOT, env=subprocess_env,
                          capture_output=True, text=True, timeout=900)
    log = (out / "device_check.log").read_text() if (out / "device_check.log").exists() else ""
    assert done.returncode == 0, done.stdout + log[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["tiny"] and report["machine"]["backend"] == "cpu"
    steps = report["steps"]
    assert list(steps) == ["tests", "benchmark"]  # --only: the study step is left out
    assert all(step["exit"] == 0 and step["seconds"] > 0 for step in steps.values()), steps
    assert "not measurements" in steps["benchmark"]["table"]  # a tiny benchmark says what it is
    assert "passed" in log and "=== study" not in log


def test_each_step_runs_the_command_its_flags_ask_for():
    tiny = device_check.steps(True, "o", "digits", 1)
    assert tiny["study"][-1] == "--tiny" and tiny["benchmark"][-1] == "--quick"
    assert tiny["tests"][-len(device_check.TINY_TESTS):] == device_check.TINY_TESTS
    full = device_check.steps(False, "o", "idx:D", 4)
    assert full["study"][1:] == ["-m", "experiments.reproduce", "--dataset", "idx:D", "--split", "train",
                                 "--workdir", "o/study"]
    assert "--quick" not in full["benchmark"]
    assert set(device_check.PARALLEL_TESTS) <= set(full["tests"])  # several devices: data parallel too
    assert not set(device_check.PARALLEL_TESTS) & set(device_check.steps(False, "o", "x", 1)["tests"])
    quick = device_check.steps(False, "o", "idx:D", 1, "quick", "test")
    assert quick["study"][-5:] == ["--split", "test", "--workdir", "o/study", "--quick"]

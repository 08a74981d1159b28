"""The accelerator check runs anywhere: on this CPU, tiny, every step passes and the JSON holds each."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_device_check_runs_every_step_and_writes_its_json_and_log(tmp_path, subprocess_env):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_check", "--tiny", "--dataset", "digits",
                           "--out", str(out)], cwd=ROOT, env=subprocess_env, capture_output=True, text=True,
                          timeout=900)
    log = (out / "device_check.log").read_text() if (out / "device_check.log").exists() else ""
    assert done.returncode == 0, done.stdout + log[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["tiny"] and report["machine"]["backend"] == "cpu"
    steps = report["steps"]
    assert list(steps) == ["tests", "benchmark", "study"]
    assert all(step["exit"] == 0 and step["seconds"] > 0 for step in steps.values()), steps
    assert "not measurements" in steps["benchmark"]["table"]  # a tiny benchmark says what it is
    assert "| Part 1: palindrome sweep |" in steps["study"]["wall_time"]
    assert set(steps["study"]["scores"]["rows"]) >= {"untrained generator"}
    assert "passed" in log and "=== study" in log

"""The check to run on an accelerator: the tests that matter there, the benchmark, the whole study.

    python -m benchmarks.device_check                     # on a GPU or TPU: about an hour
    python -m benchmarks.device_check --study quick       # the study as reproduce --quick: minutes
    python -m benchmarks.device_check --tiny              # anywhere, in a few minutes: the same steps, tiny

On whatever devices JAX sees, in this order, each step a process of its own with a time limit:

1. ``tests``: the tests whose answer can differ on an accelerator: the sweep equals separate runs
   (vmap and map), a resumed run ends bit for bit where an unbroken one does (GAN, palindrome
   study), and, with several devices, data parallel equals one device. Matrix products run at full
   float32 precision (``JAX_DEFAULT_MATMUL_PRECISION=highest``): recent NVIDIA GPUs would otherwise
   use TF32, and two programs that should agree to float32 rounding would not.
2. ``benchmark``: ``python -m benchmarks.benchmark`` (``--quick`` with ``--tiny``).
3. ``gan_sweep``: ``python -m benchmarks.gan_sweep``, N GANs in one program against N separate
   processes (``--quick`` with ``--tiny``).
4. ``study``: ``python -m experiments.reproduce`` at the study's size (``--study quick``: its
   ``--quick`` size; ``--tiny`` sizes with ``--tiny``), with the wall time of each stage.

The tests' subprocesses use the accelerator too (``JAXGAN_TEST_PLATFORMS=""``; the suite's
default keeps them on the CPU). Writes ``device_check.json`` (the machine, and per step its
command, exit status, seconds and results; rewritten after every step, so a check cut short keeps
what it finished) and ``device_check.log`` (everything the steps printed) to ``--out``. Exits 1
when a step failed, after running the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from jaxgan.runtime import files

TESTS = [
    "tests/test_palindrome_train.py::test_sweep_equals_separate_runs",
    "tests/test_gan.py::test_resumed_run_ends_bit_for_bit_in_the_uninterrupted_state",
    "tests/test_palindrome_cli.py::test_a_finished_study_continues_to_a_larger_epochs_total_exactly",
    "tests/test_gan_sweep.py",  # each GAN of a sweep equals its separate run (map, vmap)
]
# --tiny checks the check, not the numbers: one quick test that runs the models' equations.
TINY_TESTS = [
    "tests/test_recurrent.py::test_one_step_of_each_model_with_two_biases_equals_a_hand_computation"]
PARALLEL_TESTS = ["tests/test_parallel.py"]  # data parallel and the sharded sweep against one device
STEPS = ("tests", "benchmark", "gan_sweep", "study")


def machine() -> dict:
    """What the check ran on: JAX's backend and devices, and the host."""
    import jax

    devices = jax.devices()
    return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "device_count": len(devices), "jax": jax.__version__, "python": platform.python_version(),
            "host": platform.platform(), "cpu_count": os.cpu_count()}


def steps(tiny: bool, out: str, dataset: str, device_count: int, study_size: str = "full",
          split: str = "train") -> dict[str, list[str]]:
    """Each step's command."""
    python = sys.executable
    tests = list(TINY_TESTS if tiny else TESTS)
    if device_count > 1 and not tiny:
        tests += PARALLEL_TESTS
    study = ["--tiny"] if tiny else (["--quick"] if study_size == "quick" else [])
    return {
        "tests": [python, "-m", "pytest", "-o", "addopts=", "-q", "-rs", *tests],  # in one process
        "benchmark": [python, "-m", "benchmarks.benchmark", "--out", os.path.join(out, "benchmark.json"),
                      *(["--quick"] if tiny else [])],
        "gan_sweep": [python, "-m", "benchmarks.gan_sweep", "--out", os.path.join(out, "gan_sweep.json"),
                      *(["--quick"] if tiny else ["--dataset", dataset, "--split", split])],
        "study": [python, "-m", "experiments.reproduce", "--dataset", dataset, "--split", split, "--workdir",
                  os.path.join(out, "study"), *study],
    }


def main(argv: list[str] | None = None) -> int:
    """Runs every step; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.device_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/device_check", help="where the JSON and the log go "
                        "(default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="every step at its smallest, to check the "
                        "check itself (a CPU runs it in minutes)")
    parser.add_argument("--dataset", default="auto", help="the study's images, as experiments.reproduce "
                        "--dataset (default: %(default)s)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="the study's split "
                        "of --dataset, as experiments.reproduce --split (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), metavar="STEP",
                        help=f"run only these steps, of {', '.join(STEPS)} (default: all)")
    parser.add_argument("--study", choices=("full", "quick"), default="full", help="the study's size: "
                        "full (the study's settings, hours on a CPU) or quick (reproduce --quick) "
                        "(default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds each step may take (default: "
                        "600 with --tiny, else 3 hours)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    env = {**os.environ, "JAX_DEFAULT_MATMUL_PRECISION": "highest", "PYTHONUNBUFFERED": "1",
           "JAXGAN_TEST_PLATFORMS": ""}
    timeout = args.timeout or (600 if args.tiny else 3 * 3600)
    info = machine()
    report = {"machine": info, "tiny": args.tiny, "study": args.study, "steps": {}}
    report_path = os.path.join(args.out, "device_check.json")
    log_path = os.path.join(args.out, "device_check.log")
    failed = False
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"{json.dumps(info)}\n")
        for name, command in steps(args.tiny, args.out, args.dataset, info["device_count"],
                                   args.study, args.split).items():
            if name not in args.only:
                continue
            log.write(f"\n=== {name}: {' '.join(command)}\n")
            log.flush()
            began = time.perf_counter()
            try:
                done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            seconds = round(time.perf_counter() - began, 1)
            report["steps"][name] = {"command": command, "exit": code, "seconds": seconds,
                                     **_results(name, args.out)}
            failed |= code != 0
            files.write_json(report_path, report)
            print(f"{name}: exit {code} in {seconds} s", flush=True)
    print(f"wrote {report_path} and {log_path}")
    return 1 if failed else 0


def _results(name: str, out: str) -> dict:
    """What a finished step measured: the benchmark's table, the study's stage times and scores."""
    for step in ("benchmark", "gan_sweep"):
        if name == step and os.path.exists(os.path.join(out, f"{step}.json")):
            with open(os.path.join(out, f"{step}.json"), encoding="utf-8") as f:
                return {"table": json.load(f)["table"]}
    report = os.path.join(out, "study", "REPORT.md")
    if name == "study" and os.path.exists(report):
        text = open(report, encoding="utf-8").read()
        return {"wall_time": text[text.index("## Wall time"):] if "## Wall time" in text else "",
                "scores": json.load(open(os.path.join(out, "study", "scores.json"), encoding="utf-8"))}
    return {}


if __name__ == "__main__":
    sys.exit(main())

"""Measures jaxgan's speed against the device's own matmul peak; writes benchmark.json.

    python -m experiments.benchmark                 # about 10 minutes on a 2-core CPU
    python -m experiments.benchmark --quick         # seconds: checks that it runs
    python -m experiments.benchmark --whole --torch-python /tmp/torch/bin/python

--whole also times Part 1 with one seed (2 models x 4 lengths x 100 epochs) as a whole
process of the CLI, start-up and compiles included; --torch-python runs the plain PyTorch
eager reference (benchmarks/torch_reference.py) with that interpreter in the same run, so the
ratios compare the two on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from experiments import _cli
from jaxgan.errors import UserError


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, runs every measurement, prints the table and writes benchmark.json."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/benchmark/benchmark.json",
                        help="where the JSON results go (default: %(default)s)")
    parser.add_argument("--repeats", type=_cli.positive_int, default=None,
                        help="timed calls per figure, after one warm-up; the median is reported (default: 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--whole", action="store_true",
                        help="also time Part 1 with one seed as one CLI process (about 2 minutes here)")
    parser.add_argument("--torch-python", default=None, metavar="PYTHON",
                        help="a Python with PyTorch: also run benchmarks/torch_reference.py with it "
                             "(Part 1 with --whole, the GAN always) and report jaxgan's speed-ups")
    args = parser.parse_args(argv)
    if args.torch_python is not None and not os.access(args.torch_python, os.X_OK):
        raise UserError(f"--torch-python {args.torch_python} is not an executable file")
    import dataclasses

    from jaxgan import benchmark

    config = benchmark.BenchmarkConfig.quick() if args.quick else benchmark.BenchmarkConfig()
    if args.repeats is not None:
        config = dataclasses.replace(config, repeats=args.repeats)
    _cli.writable_dir(os.path.dirname(os.path.abspath(args.out)))
    print(_cli.describe_devices())
    log = lambda line: print(f"  measuring {line}", flush=True)
    result = benchmark.run(config, log=log)
    if args.whole:
        log("Part 1, one seed, as one process: python -m experiments.palindrome --seeds 1")
        result["part1_process_s"] = _part1_process_seconds(quick=args.quick)
    if args.torch_python is not None:
        log(f"the PyTorch eager reference with {args.torch_python}")
        result["torch"] = _torch_reference(args.torch_python, part1=args.whole, quick=args.quick)
    text = benchmark.table(result)
    print(text)
    tmp = f"{args.out}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result | {"table": text}, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


def _part1_process_seconds(quick: bool) -> float:
    """Wall seconds of ``python -m experiments.palindrome --seeds 1`` in a fresh process (scratch dirs)."""
    import subprocess
    import sys
    import tempfile
    import time

    argv = ["--seeds", "1"] + (["--epochs", "2", "--lengths", "3", "5"] if quick else [])
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "experiments.palindrome", *argv, "--workdir", scratch,
                        "--checkpoint-dir", os.path.join(scratch, "checkpoints")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def _torch_reference(python: str, part1: bool, quick: bool) -> dict:
    """The JSON lines of benchmarks/torch_reference.py run with ``python``, merged."""
    import subprocess

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                          "torch_reference.py")
    argv = ([] if part1 else ["--gan-only"]) + (["--epochs", "2", "--gan-steps", "20"] if quick else [])
    done = subprocess.run([python, script, *argv], capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the PyTorch reference failed with {python}: {tail}")
    merged: dict = {}
    for line in done.stdout.splitlines():
        merged.update(json.loads(line))
    return merged


if __name__ == "__main__":
    _cli.run(main)

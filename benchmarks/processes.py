"""What a user waits for: Part 1 and the GAN as whole processes, against the PyTorch eager reference.

    python -m benchmarks.processes --dataset idx:DIR --torch-python TORCH_PYTHON
    python -m benchmarks.processes --quick          # tiny settings: checks that it runs

Runs, ``--repeats`` times each (the median is reported), as a user runs them:

- ``python -m experiments.palindrome --seeds 1`` (2 models x T = 5, 10, 15, 20 x 100 epochs) and
  ``python -m experiments.train_gan --epochs 10`` on ``--dataset`` (the MNIST test split: 10,000
  images, 1,560 steps), each first with an empty compilation cache (cold) and then again with the
  cache the first run filled (warm), in fresh output folders;
- the GAN once more with ``--ema-decay 0``: the EMA's cost per step;
- with ``--torch-python``, ``benchmarks/torch_reference.py`` on the same work in the same run.

For the GAN it reads the process's own report of its training loop ("... steps/s over S s of
training"): the time outside the loop (imports, images, compiling, checkpoints, figures) is the
wall time less that. Prints a table and writes ``runs/benchmark/processes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from jaxgan.runtime import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(command: list[str], env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of one process; stops with its last lines if it fails."""
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"error: {' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return seconds, done.stdout


def _gan_loop(stdout: str) -> tuple[float, float]:
    """(steps/s, seconds of training) from train_gan's "compiled in ...; X steps/s over S s" line."""
    match = re.search(r"([0-9.]+) steps/s over ([0-9.]+) s of training", stdout)
    if match is None:
        sys.exit("error: train_gan printed no training time")
    return float(match.group(1)), float(match.group(2))


def jaxgan_runs(name: str, argv: list[str], repeats: int, gan: bool) -> dict:
    """Cold and warm runs of ``python -m experiments.NAME ARGV``: medians of their seconds."""
    rows: dict[str, list] = {"cold_s": [], "warm_s": [], "cold_outside_s": [], "warm_outside_s": [],
                             "steps_per_s": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            env = {**os.environ, "JAXGAN_COMPILATION_CACHE": os.path.join(scratch, "cache")}
            env.pop("JAX_COMPILATION_CACHE_DIR", None)
            for kind in ("cold", "warm"):
                out = os.path.join(scratch, kind)
                command = [sys.executable, "-m", f"experiments.{name}", *argv, "--workdir", out,
                           "--checkpoint-dir", os.path.join(out, "ck")]
                seconds, stdout = _run(command, env)
                rows[f"{kind}_s"].append(seconds)
                if gan:
                    steps_per_s, train_s = _gan_loop(stdout)
                    rows[f"{kind}_outside_s"].append(seconds - train_s)
                    rows["steps_per_s"].append(steps_per_s)
    return {key: statistics.median(values) for key, values in rows.items() if values}


def torch_run(python: str, argv: list[str], repeats: int) -> dict:
    """Median wall seconds and the merged JSON of ``benchmarks/torch_reference.py ARGV``."""
    walls, last = [], {}
    for _ in range(repeats):
        seconds, stdout = _run([python, "-m", "benchmarks.torch_reference", *argv], dict(os.environ))
        walls.append(seconds)
        for line in stdout.splitlines():
            last.update(json.loads(line))
    return {"wall_s": statistics.median(walls), **last}


def main() -> None:
    """Runs every process, prints the table, writes the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="the GAN's images (default: digits; the table in "
                        "docs/performance.md used idx:DIR with the MNIST test split)")
    parser.add_argument("--torch-python", default=None, help="a Python with PyTorch and jaxgan")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each process (default: 2)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that it runs")
    parser.add_argument("--out", default="runs/benchmark/processes.json")
    args = parser.parse_args()
    tiny = ["--epochs", "2", "--lengths", "3", "5", "--hidden", "8"]
    part1 = ["--seeds", "1", *(tiny if args.quick else [])]
    gan_epochs = "1" if args.quick else "10"
    gan = ["--dataset", args.dataset, "--split", "test", "--epochs", gan_epochs]
    result = {"dataset": args.dataset, "repeats": args.repeats, "quick": args.quick}
    print("Part 1, one seed ...", flush=True)
    result["part1"] = jaxgan_runs("palindrome", part1, args.repeats, gan=False)
    print("GAN ...", flush=True)
    result["gan"] = jaxgan_runs("train_gan", gan, args.repeats, gan=True)
    print("GAN without its EMA ...", flush=True)
    result["gan_no_ema"] = jaxgan_runs("train_gan", [*gan, "--ema-decay", "0"], args.repeats, gan=True)
    if args.torch_python:
        print("PyTorch ...", flush=True)
        torch_part1 = ["--part1", "--seeds", "1"] + (["--epochs", "2"] if args.quick else [])
        result["torch_part1"] = torch_run(args.torch_python, torch_part1, args.repeats)
        torch_gan = ["--gan-epochs", gan_epochs, "--dataset", args.dataset, "--split", "test"]
        result["torch_gan"] = torch_run(args.torch_python, torch_gan, args.repeats)
    result["table"] = table(result)
    print(result["table"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    files.write_json(args.out, result)
    print(f"wrote {args.out}")


def table(result: dict) -> str:
    """The measurements as a markdown table, with PyTorch's where it ran."""
    p, g, n = result["part1"], result["gan"], result["gan_no_ema"]
    tp, tg = result.get("torch_part1"), result.get("torch_gan")

    def row(work: str, cold: str, warm: str, torch: str = "", ratio: str = "") -> str:
        """One line of the table."""
        return f"| {work} | {cold} | {warm} | {torch} | {ratio} |"

    lines = ["| work | jaxgan, cold cache | jaxgan, warm cache | PyTorch eager | PyTorch / jaxgan (warm) |",
             "|---|---|---|---|---|",
             row("Part 1, one seed, as one process", f"{p['cold_s']:.1f} s", f"{p['warm_s']:.1f} s",
                 *((f"{tp['wall_s']:.1f} s", f"{tp['wall_s'] / p['warm_s']:.2f}x") if tp else ())),
             row("GAN as one process", f"{g['cold_s']:.1f} s", f"{g['warm_s']:.1f} s",
                 *((f"{tg['wall_s']:.1f} s", f"{tg['wall_s'] / g['warm_s']:.2f}x") if tg else ())),
             row("GAN, time outside the training loop", f"{g['cold_outside_s']:.1f} s",
                 f"{g['warm_outside_s']:.1f} s", *((f"{tg['wall_s'] - tg['train_s']:.1f} s",) if tg else ())),
             row("GAN training loop", f"{g['steps_per_s']:.0f} steps/s", "",
                 *((f"{tg['steps_per_s']:.0f} steps/s", f"{g['steps_per_s'] / tg['steps_per_s']:.2f}x") if tg
                   else ()))]
    ema_ms = 1e3 / g["steps_per_s"] - 1e3 / n["steps_per_s"]
    lines += ["", f"The EMA costs {ema_ms:.2f} ms a step ({n['steps_per_s']:.0f} steps/s without it, "
                  f"{g['steps_per_s']:.0f} with it)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Many GANs in one program against separate runs: GAN-steps/s of N = 1, 2, 4, 8, 16 runs, whole processes.

    python -m benchmarks.gan_sweep --dataset idx:DIR --split test     # the table in docs/performance.md
    python -m benchmarks.gan_sweep --quick                            # tiny: checks that it runs

For each N, one process trains N GANs (seeds 0..N-1, the study's networks and batch 64) in one
program (``jaxgan.gan.sweep``, ``--strategies``: map, vmap or both), and N processes, one after
another, train one GAN each with the one-run program (``jaxgan.gan.steps.epoch_function``, as
``train_gan`` does). Every process does the same work apart from the runs it holds: start Python
and JAX, load the images, compile, train ``--epochs`` epochs of ``--images`` images, read the
results back; none writes files, and none uses a compilation cache (each compiles, as a first run
does). The separate runs' time for N is the sum of N one-run processes, measured for N up to
``--separate`` K and N/K times the K measured beyond (every one-run process does the same work).

GAN-steps/s is the steps of all N runs over the wall time of the process(es). Each process also
reports its compile seconds and its training-loop seconds, so the table gives the loop's own
GAN-steps/s too: what a long run approaches. ``--repeats`` repeats everything (medians reported).
Prints a markdown table and writes ``runs/benchmark/gan_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from jaxgan.runtime import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATEGIES = ("map", "vmap")


def worker(args: argparse.Namespace) -> None:
    """One process: ``--runs`` GANs in one program (``--strategy`` map/vmap) or one GAN alone
    (``single``); prints one JSON line with its compile and training seconds."""
    import dataclasses

    import jax
    import numpy as np

    from jaxgan.configs.gan import GANConfig
    from jaxgan.data.images import load_images
    from jaxgan.gan import steps, sweep

    images = load_images(args.dataset, split=args.split).images[: args.images]
    config = GANConfig(sample_every=10**9)  # no grids inside the timed loop
    if args.quick:
        config = dataclasses.replace(config, gen_features=(32, 64), disc_features=(64, 32))
    configs = [dataclasses.replace(config, seed=args.seed + r) for r in range(args.runs)]
    data = jax.device_put(images)
    if args.strategy == "single":
        state = steps.init_state(configs[0])
        noise = steps.grid_noise(state, config.latent_dim)
        epoch_fn = steps.epoch_function(steps.EpochConfig.of(config))
    else:
        state = sweep.init_sweep(configs)
        noise = sweep.sweep_grid_noise(state, config.latent_dim)
        epoch_fn = sweep.sweep_epoch_function(sweep.check_sweep(configs), args.strategy)
    tick = time.perf_counter()
    program = epoch_fn.lower(state, data, noise).compile()
    compile_s = time.perf_counter() - tick
    tick = time.perf_counter()
    for _ in range(args.epochs):
        state, metrics, _, _ = program(state, data, noise)
        metrics = jax.device_get(metrics)  # the host loop's one sync per epoch
    train_s = time.perf_counter() - tick
    assert all(np.isfinite(v).all() for v in metrics.values())
    steps_done = args.runs * args.epochs * (len(images) // config.batch_size)
    print(json.dumps({"compile_s": compile_s, "train_s": train_s, "gan_steps": steps_done}))


def _process(args: argparse.Namespace, strategy: str, runs: int, seed: int) -> dict:
    """Runs one worker process; its wall seconds (launch to exit) and its own report."""
    command = [sys.executable, "-m", "benchmarks.gan_sweep", "--worker", "--strategy", strategy, "--runs",
               str(runs), "--seed", str(seed), "--dataset", args.dataset, "--split", args.split, "--images",
               str(args.images), "--epochs", str(args.epochs), *(["--quick"] if args.quick else [])]
    env = {**os.environ, "JAXGAN_COMPILATION_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"error: {' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return {"wall_s": wall_s, **json.loads(done.stdout.strip().splitlines()[-1])}


def measure(args: argparse.Namespace) -> dict:
    """Every process of every repeat; per N and way, the medians of wall, compile and loop seconds."""
    samples: dict[str, dict[int, list[dict]]] = {way: {n: [] for n in args.counts}
                                                  for way in ("separate", *args.strategies)}
    keys = ("wall_s", "compile_s", "train_s", "gan_steps")
    for repeat in range(args.repeats):
        alone = []
        for r in range(args.separate):
            alone.append(_process(args, "single", 1, r))
            print(f"repeat {repeat + 1}: one-run process {r + 1}/{args.separate}: "
                  f"{alone[-1]['wall_s']:.1f} s", flush=True)
        for n in args.counts:
            # N separate runs one after another: the first N one-run processes, or beyond those
            # measured, N/K times the K measured (every one-run process does the same work).
            first, scale = (alone[:n], 1.0) if n <= len(alone) else (alone, n / len(alone))
            samples["separate"][n].append({key: scale * sum(p[key] for p in first) for key in keys})
            for strategy in args.strategies:
                samples[strategy][n].append(_process(args, strategy, n, 0))
                print(f"repeat {repeat + 1}: {n} runs in one program ({strategy}): "
                      f"{samples[strategy][n][-1]['wall_s']:.1f} s", flush=True)
    result = {}
    for way, by_count in samples.items():
        result[way] = {}
        for n, processes in by_count.items():
            row = {key: statistics.median(p[key] for p in processes) for key in keys[:3]}
            steps_done = processes[0]["gan_steps"]
            row.update(gan_steps=steps_done, steps_per_s=steps_done / row["wall_s"],
                       loop_steps_per_s=steps_done / row["train_s"])
            result[way][str(n)] = row
    return result


def table(result: dict, counts: list[int], strategies: list[str]) -> str:
    """GAN-steps/s of whole processes and of the training loop, per N and way, and the ratios."""
    separate = result["separate"]
    head = ["N", "separate processes: GAN-steps/s (wall s)"]
    for strategy in strategies:
        head += [f"one program, {strategy}: GAN-steps/s (wall s)", f"{strategy} / separate"]
    head += ["loop GAN-steps/s: one run", *(f"loop: {s}" for s in strategies)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    measured = result["meta"]["separate"]
    for n in map(str, counts):
        about = "" if int(n) <= measured else "≈ "  # extrapolated from the K measured processes
        cells = [n, f"{about}{separate[n]['steps_per_s']:.1f} ({about}{separate[n]['wall_s']:.1f})"]
        for strategy in strategies:
            row = result[strategy][n]
            cells += [f"{row['steps_per_s']:.1f} ({row['wall_s']:.1f})",
                      f"{row['steps_per_s'] / separate[n]['steps_per_s']:.2f}x"]
        cells += [f"{separate[n]['loop_steps_per_s']:.1f}",
                  *(f"{result[s][n]['loop_steps_per_s']:.1f}" for s in strategies)]
        lines.append("| " + " | ".join(cells) + " |")
    one = separate[str(counts[0])]
    lines += ["", f"A one-run process: {one['wall_s'] / counts[0]:.1f} s wall, of which "
                  f"{one['compile_s'] / counts[0]:.1f} s compiling and {one['train_s'] / counts[0]:.1f} s "
                  f"training ({result['meta']['steps_per_run']} steps). Separate runs beyond N = {measured} "
                  f"(≈) are N/{measured} times the {measured} measured one-run processes."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parses flags; runs the worker or the whole benchmark."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gan_sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="the images (default: %(default)s)")
    parser.add_argument("--split", choices=("train", "test"), default="test", help="(default: %(default)s)")
    parser.add_argument("--images", type=int, default=2048, help="images per epoch (default: %(default)s: 32 "
                        "steps of 64)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="N, runs per program "
                        "(default: %(default)s)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES),
                        help="how one program holds its runs (default: both)")
    parser.add_argument("--separate", type=int, default=4, help="one-run processes measured, K; N separate "
                        "runs beyond K are N/K times those K (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=1, help="times to measure everything (default: 1)")
    parser.add_argument("--quick", action="store_true", help="tiny networks, N = 1, 2: checks that it runs")
    parser.add_argument("--out", default="runs/benchmark/gan_sweep.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.counts, args.images, args.epochs, args.separate = [1, 2], 256, 1, 2
    result = measure(args)
    import jax

    result["meta"] = {"dataset": args.dataset, "split": args.split, "images": args.images,
                      "epochs": args.epochs, "repeats": args.repeats, "separate": args.separate,
                      "quick": args.quick, "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
                      "steps_per_run": args.epochs * (args.images // 64)}
    result["table"] = table(result, args.counts, args.strategies)
    print(result["table"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    files.write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

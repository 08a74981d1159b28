"""Speed measured against the device's own limit: matmul peak, palindrome steps, sweeps, GAN step.

    python -m benchmarks.benchmark                 # about 10 minutes on a 2-core CPU
    python -m benchmarks.benchmark --quick         # under a minute: checks that it runs (no figures)

The programs themselves, inside one process; ``benchmarks/processes.py`` times whole processes
(start-up and compiles included) against PyTorch. Writes benchmark.json (--out).

Every figure is the median of ``repeats`` timed calls after a warm-up call; compile times are
of ``lower(...).compile()`` alone, before any call. FLOPs are counted from the models' own
equations (a multiply-add is 2 FLOPs, a backward pass twice its forward), not from what XLA
executes, so padding and recomputation count as waste.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from experiments import _cli
from jaxgan.configs.gan import GANConfig
from jaxgan.gan import steps as gan
from jaxgan.models.gan import DISC_FEATURES, GEN_FEATURES, IMAGE_SIZE
from jaxgan.palindrome import steps, sweep
from jaxgan.runtime import files, parallel


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(first-call seconds, median seconds of ``repeats`` later calls); blocks on every result."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def matmul_peak(sizes: Sequence[int], repeats: int) -> float:
    """Measured float32 FLOP/s of the fastest [n, n] @ [n, n] product over ``sizes`` and repeats.

    The best call rather than the median: the peak is what the device can do, and on a shared
    machine every disturbance only ever makes a call slower.
    """
    best = 0.0
    product = jax.jit(jnp.matmul)
    for size in sizes:
        a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
        jax.block_until_ready(product(a, b))
        for _ in range(max(repeats, 3)):
            start = time.perf_counter()
            jax.block_until_ready(product(a, b))
            best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def step_matmul_rate(batch: int, hidden: int, gates: int, steps: int, repeats: int) -> float:
    """FLOP/s of the recurrent product alone, [batch, hidden] @ [hidden, gates * hidden], chained
    ``steps`` times inside a ``lax.scan`` as in a time loop (median call).

    The ceiling on what a palindrome step can reach: the step is made of products of this shape.
    """
    weights = jax.random.normal(jax.random.PRNGKey(0), (hidden, gates * hidden), jnp.float32) / hidden
    start = jnp.ones((batch, hidden), jnp.float32)

    @jax.jit
    def chain(h, w):
        """``steps`` products, each feeding the next (so none can be skipped or batched); every
        output column is summed into a carry, so none can be left out either."""
        def step(carry, _):
            h, total = carry
            product = h @ w
            return (product[:, :hidden], total + product), None
        return jax.lax.scan(step, (h, jnp.zeros((batch, gates * hidden))), None, length=steps)[0]

    _, seconds = timed(lambda: chain(start, weights), repeats)
    return 2 * batch * hidden * gates * hidden * steps / seconds


def palindrome_flops_per_sequence(model: str, length: int, hidden: int = 128, inputs: int = 1,
                                  classes: int = 10) -> float:
    """Train FLOPs of one sequence: forward of the equations x 3 (forward + backward)."""
    gates = {"lstm": 4, "rnn": 1}[model]
    per_step = 2 * gates * hidden * (hidden + inputs)  # W_x x + W_h h for every gate
    return 3 * (length * per_step + 2 * hidden * classes)


def gan_flops_per_step(batch: int, latent: int = 100, gen: Sequence[int] = GEN_FEATURES,
                       disc: Sequence[int] = DISC_FEATURES) -> float:
    """Train FLOPs of one GAN step (generator update, then discriminator update on 2x batch).

    Generator update: G forward + backward (3x) and D forward + input gradient (2x); the
    discriminator update: D forward + backward (3x) on real and fake. BatchNorm and
    activations are left out (under 1% of the products).
    """
    g_sizes = [latent, *gen, IMAGE_SIZE]
    d_sizes = [IMAGE_SIZE, *disc, 1]
    g_macs = sum(a * b for a, b in itertools.pairwise(g_sizes))
    d_macs = sum(a * b for a, b in itertools.pairwise(d_sizes))
    return 2 * batch * (3 * g_macs + 2 * d_macs) + 2 * (2 * batch) * 3 * d_macs


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Sizes of every measurement; ``quick()`` shrinks them for a smoke test."""

    matmul_sizes: tuple[int, ...] = (1024, 2048)
    repeats: int = 5
    palindrome_length: int = 20
    sweep_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    mixed_lengths: tuple[int, ...] = (5, 10, 15, 20)
    mixed_seeds: int = 3
    gan_images: int = 640  # 10 steps of 64 per timed call
    progress_epochs: int = 20
    step_matmul_batches: int = 13  # an epoch's batches: 13 x 20 chained products
    models: tuple[str, ...] = ("lstm", "rnn")
    strategies: tuple[str, ...] = ("vmap", "map")
    progress: bool = True  # measure what the progress bar costs
    quick_run: bool = False

    @classmethod
    def quick(cls) -> BenchmarkConfig:
        """One of each kind of measurement at tiny sizes, in seconds: checks that the benchmark runs.
        Its figures are not measurements (the table says so)."""
        return cls(matmul_sizes=(128,), repeats=1, palindrome_length=5, sweep_sizes=(1,),
                   mixed_lengths=(3, 5), mixed_seeds=1, gan_images=128, step_matmul_batches=1,
                   models=("rnn",), strategies=("map",), progress=False, quick_run=True)


def _palindrome_epoch(model: str, lengths: Sequence[int], seeds: Sequence[int], repeats: int,
                      strategy: str = "vmap", num_examples: int = 2048, mesh: Mesh | None = None) -> dict:
    """Times one epoch of the sweep program over (lengths x seeds) for ``model``, laid out as the
    CLI lays it out (``sweep.arrange_sweep``: ``map`` groups runs by length), on ``mesh``."""
    config = steps.run_config(model, max_length=max(lengths), num_examples=num_examples)
    run_lengths = sweep.run_lengths(lengths, seeds)
    runs, data = sweep.init_sweep(*sweep.pair_arrays(lengths, seeds), config)
    runs, data, layout, options = sweep.arrange_sweep(runs, data, config, run_lengths, strategy, mesh)
    state = {"runs": runs}
    tick = time.perf_counter()
    program = sweep.train_sweep_chunk.lower(runs, data, config, 1, strategy, **options).compile()
    compile_s = time.perf_counter() - tick

    def one_epoch():
        state["runs"], metrics = program(state["runs"], data)
        return metrics

    _, epoch_s = timed(one_epoch, repeats)
    devices = 1 if mesh is None else mesh.size
    slots = layout.slot_lengths  # every device scans every slot
    sequences = config.num_train * len(run_lengths)
    useful = config.num_train * sum(palindrome_flops_per_sequence(model, t) for t in run_lengths)
    executed = config.batches_per_epoch * config.batch_size * devices * sum(
        palindrome_flops_per_sequence(model, t) for t in slots)
    return {"model": model, "strategy": strategy, "lengths": list(lengths), "seeds": len(seeds),
            "devices": devices, "epoch_s": epoch_s,
            "compile_s": compile_s, "sequences_per_s": sequences / epoch_s,
            "useful_flop_per_s": useful / epoch_s, "useful_share": useful / executed}


def _gan_steps(images: int, repeats: int, mesh: Mesh | None = None) -> dict:
    """Times one scanned GAN epoch of ``images // 64`` steps on random uint8 images, on one
    device or data parallel over ``mesh``."""
    config = GANConfig()
    data = jax.random.randint(jax.random.PRNGKey(0), (images, 28, 28), 0, 256).astype(jnp.uint8)
    epoch_fn = gan.epoch_function(gan.EpochConfig(config.batch_size, 10**9), mesh)  # no grids while timed
    state = {"gan": gan.init_state(config)}
    noise = gan.grid_noise(state["gan"], config.latent_dim)
    if parallel.is_parallel(mesh):
        state["gan"], data, noise = parallel.put((state["gan"], data, noise), parallel.replicated(mesh))

    tick = time.perf_counter()
    program = epoch_fn.lower(state["gan"], data, noise).compile()
    compile_s = time.perf_counter() - tick

    def one_epoch():
        state["gan"], metrics, _, _ = program(state["gan"], data, noise)
        return metrics

    _, epoch_s = timed(one_epoch, repeats)
    steps = images // config.batch_size
    flops = gan_flops_per_step(config.batch_size) * steps / epoch_s
    return {"batch": config.batch_size, "devices": 1 if mesh is None else mesh.size,
            "steps_per_s": steps / epoch_s,
            "images_per_s": steps * config.batch_size / epoch_s, "useful_flop_per_s": flops,
            "compile_s": compile_s}


def _progress_overhead(model: str, lengths: Sequence[int], seeds: Sequence[int], epochs: int,
                       repeats: int) -> dict:
    """The sweep as the CLI runs it (a chunk of 10 epochs, then a tqdm update) against one chunk.

    Both programs are compiled before timing; the difference is the per-chunk host sync, the
    metric transfer and the bar, as a share of the one-chunk time.
    """
    import io

    from tqdm import tqdm

    config = steps.run_config(model, max_length=max(lengths))

    def with_progress():
        with tqdm(total=epochs, file=io.StringIO(), mininterval=0) as bar:
            def on_chunk(done, metrics):
                """What experiments.palindrome does per chunk."""
                bar.update(done - bar.n)
                bar.set_postfix(val_acc=f"{float(metrics['val_acc'][:, -1].mean()):.3f}")
            return sweep.sweep(config, lengths, seeds, epochs, chunk_epochs=10, on_chunk=on_chunk)[1]

    def one_chunk():
        return sweep.sweep(config, lengths, seeds, epochs, chunk_epochs=epochs)[1]

    _, chunked_s = timed(with_progress, repeats)
    _, whole_s = timed(one_chunk, repeats)
    return {"model": model, "epochs": epochs, "chunk_epochs": 10, "with_progress_s": chunked_s,
            "one_chunk_s": whole_s, "overhead": chunked_s / whole_s - 1.0}


def machine() -> dict:
    """What the numbers were measured on."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": device.device_kind,
            "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__,
            "platform": platform.platform()}


def run(config: BenchmarkConfig, log: Callable[[str], None] = print) -> dict:
    """Runs every measurement; returns a JSON-ready dict (FLOP/s, utilisation = share of peak)."""
    result = {"machine": machine(), "config": dataclasses.asdict(config)}
    log(f"matmul peak ({', '.join(f'{n}^2' for n in config.matmul_sizes)}, float32)")
    peak = matmul_peak(config.matmul_sizes, config.repeats)
    result["matmul_peak_flop_per_s"] = peak
    log("the recurrent products alone, at the study's shapes (batch 128, hidden 128)")
    result["step_matmul_flop_per_s"] = {
        model: step_matmul_rate(128, 128, gates, 20 * config.step_matmul_batches, config.repeats)
        for model, gates in (("lstm", 4), ("rnn", 1)) if model in config.models}
    result["palindrome_step"] = []
    for model in config.models:
        log(f"palindrome {model}, T={config.palindrome_length}, one run")
        row = _palindrome_epoch(model, [config.palindrome_length], [0], config.repeats)
        row["utilization"] = row["useful_flop_per_s"] / peak
        result["palindrome_step"].append(row)
    result["sweep"] = []
    mesh = sweep.sweep_mesh()  # None on one device
    for model in config.models:
        for strategy in config.strategies:
            for k in config.sweep_sizes:
                log(f"sweep {model} ({strategy}): K={k} runs of T={config.palindrome_length}")
                row = _palindrome_epoch(model, [config.palindrome_length], list(range(k)), config.repeats,
                                        strategy)
                result["sweep"].append(row)
            log(f"sweep {model} ({strategy}): lengths {config.mixed_lengths} x {config.mixed_seeds} seeds")
            row = _palindrome_epoch(model, config.mixed_lengths, list(range(config.mixed_seeds)),
                                    config.repeats, strategy)
            result["sweep"].append(row | {"mixed": True})
        if mesh is not None:  # what the CLI runs here: map, runs spread over every device
            log(f"sweep {model} (map) over {mesh.size} devices: lengths {config.mixed_lengths} x "
                f"{config.mixed_seeds} seeds")
            row = _palindrome_epoch(model, config.mixed_lengths, list(range(config.mixed_seeds)),
                                    config.repeats, "map", mesh=mesh)
            result["sweep"].append(row | {"mixed": True})
    if config.progress:
        log(f"progress reporting: rnn sweep, {config.progress_epochs} epochs, chunks of 10 vs one chunk")
        result["progress"] = _progress_overhead("rnn", config.mixed_lengths, list(range(config.mixed_seeds)),
                                                config.progress_epochs, config.repeats)
    log("GAN step, batch 64, one device")
    result["gan_step"] = [_gan_steps(config.gan_images, config.repeats)]
    if jax.device_count() > 1 and not config.quick_run:
        log(f"GAN step, batch 64, data parallel over {jax.device_count()} devices")
        result["gan_step"].append(_gan_steps(config.gan_images, config.repeats, parallel.make_mesh()))
    for row in result["gan_step"]:
        row["utilization"] = row["useful_flop_per_s"] / peak
    result["peak_host_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def table(result: dict) -> str:
    """The benchmark as a markdown table (medians; utilisation against the measured peak)."""
    peak = result["matmul_peak_flop_per_s"]
    m = result["machine"]
    rates = result.get("step_matmul_flop_per_s", {})
    shapes = "; ".join(f"{model}'s recurrent product alone (in a scan) {rate / 1e9:.1f} GFLOP/s "
                       f"({rate / peak:.0%} of peak)" for model, rate in rates.items())
    lines = ["**Quick run: tiny sizes and one call each, to check that every measurement runs; these "
             "figures are not measurements.**", ""] if result["config"].get("quick_run") else []
    lines += [f"Machine: {m['device_kind']} ({m['backend']}, {m['cpu_count']} CPUs, "
             f"{m['device_count']} JAX devices), JAX {m['jax']}, Python {m['python']}; matmul peak "
             f"{peak / 1e9:.1f} GFLOP/s (float32)" + (f"; {shapes}." if shapes else "."), "",
             "| program | per call | throughput | useful GFLOP/s | utilization | compile |",
             "|---|---|---|---|---|---|"]
    for row in result["palindrome_step"]:
        lines.append(f"| palindrome {row['model']} T={row['lengths'][0]}, 1 run "
                     f"| {row['epoch_s']:.3f} s/epoch "
                     f"| {row['sequences_per_s']:.0f} seq/s | {row['useful_flop_per_s'] / 1e9:.1f} "
                     f"| {row['utilization']:.1%} | {row['compile_s']:.1f} s |")
    # K single runs = K x the one-run row of the same model (the program without the run axis).
    base = {r["model"]: r["epoch_s"] for r in result["palindrome_step"]}
    for row in result["sweep"]:
        runs = row["seeds"] * len(row["lengths"])
        label = f"sweep {row['model']} {row['strategy']}"
        if row.get("devices", 1) > 1:
            label += f" over {row['devices']} devices"
        name = (f"{label} T={'/'.join(map(str, row['lengths']))} x {row['seeds']} seeds"
                if row.get("mixed") else f"{label} K={runs}")
        ratio = ("" if row.get("mixed")
                 else f" ({row['epoch_s'] / (runs * base[row['model']]):.2f} x K single)")
        lines.append(f"| {name} | {row['epoch_s']:.3f} s/epoch{ratio} | {row['sequences_per_s']:.0f} seq/s "
                     f"| {row['useful_flop_per_s'] / 1e9:.1f} | useful share {row['useful_share']:.0%} "
                     f"| {row['compile_s']:.1f} s |")
    for g in result["gan_step"]:
        where = "one device" if g["devices"] == 1 else f"data parallel over {g['devices']} devices"
        lines.append(f"| GAN step, batch {g['batch']}, {where} | {1 / g['steps_per_s'] * 1e3:.1f} ms/step "
                     f"| {g['steps_per_s']:.1f} steps/s, {g['images_per_s']:.0f} img/s "
                     f"| {g['useful_flop_per_s'] / 1e9:.1f} | {g['utilization']:.1%} "
                     f"| {g['compile_s']:.1f} s |")
    if "progress" in result:
        p = result["progress"]
        lines += ["", f"Progress reporting (a host sync and a tqdm update every {p['chunk_epochs']} epochs) "
                  f"costs {p['overhead']:+.1%} of training time ({p['model']} sweep, {p['epochs']} epochs: "
                  f"{p['with_progress_s']:.2f} s against {p['one_chunk_s']:.2f} s in one chunk)."]
    lines += ["", f"Peak host memory: {result['peak_host_memory_mib']:.0f} MiB."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, runs every measurement, prints the table and writes benchmark.json."""
    parser = _cli.Parser(prog="python -m benchmarks.benchmark", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/benchmark/benchmark.json",
                        help="where the JSON results go (default: %(default)s)")
    parser.add_argument("--repeats", type=_cli.positive_int, default=None,
                        help="timed calls per figure, after one warm-up; the median is reported (default: 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--strategies", nargs="+", choices=("vmap", "map"), default=None,
                        help="the sweep strategies measured (default: both; on a GPU every size of each "
                             "compiles a program of its own, so vmap, the GPU default, alone is quicker)")
    args = parser.parse_args(argv)
    config = BenchmarkConfig.quick() if args.quick else BenchmarkConfig()
    if args.repeats is not None:
        config = dataclasses.replace(config, repeats=args.repeats)
    if args.strategies is not None:
        config = dataclasses.replace(config, strategies=tuple(args.strategies))
    _cli.output_files([("--out", args.out)])  # before any measuring
    print(_cli.describe_devices())
    log = lambda line: print(f"  measuring {line}", flush=True)
    result = run(config, log=log)
    text = table(result)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    files.write_json(args.out, result | {"table": text}, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    _cli.run(main)

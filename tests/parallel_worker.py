"""Run by tests/test_parallel.py in a fresh process with 4 simulated CPU devices; prints one JSON line.

XLA fixes its CPU device count when JAX starts, so this cannot run inside pytest's own
process. Each check runs the same work on all 4 devices and on one, in this one process,
and reports the largest differences and how the arrays were placed:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/parallel_worker.py sweep|gan|gan_sweep
"""

from __future__ import annotations

import json
import re
import sys

import jax
import numpy as np

from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import ImageSet
from jaxgan.errors import UserError
from jaxgan.gan import steps as gan
from jaxgan.gan import sweep as gan_sweep
from jaxgan.gan.train import train_and_evaluate
from jaxgan.palindrome import steps, sweep
from jaxgan.runtime import parallel

SWEEP_CONFIG = steps.run_config("rnn", max_length=6, hidden=8, num_examples=64, batch_size=16)
LENGTHS, SEEDS, EPOCHS = (3, 6), (0, 1, 2), 2  # 6 runs: padded to 8 on 4 devices
GAN_CONFIG = GANConfig(gen_features=(16, 32, 32), disc_features=(32, 16), batch_size=16, sample_every=2)
GAN_IMAGES = 64  # 4 steps of 16, 4 images per device per step


def max_difference(pairs) -> dict:
    """Largest absolute and relative (to max(|expected|, 1e-3)) difference over (got, expected) pairs."""
    worst_abs = worst_rel = 0.0
    for got, expected in pairs:
        got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
        gap = np.abs(got - expected)
        worst_abs = max(worst_abs, float(gap.max(initial=0.0)))
        worst_rel = max(worst_rel, float((gap / np.maximum(np.abs(expected), 1e-3)).max(initial=0.0)))
    return {"abs": worst_abs, "rel": worst_rel}


def placement(array: jax.Array) -> dict:
    """How many devices hold ``array``, its spec, and the shapes of the parts this process holds."""
    return {"devices": len(array.sharding.device_set), "spec": str(getattr(array.sharding, "spec", "")),
            "shard_shapes": sorted({tuple(s.data.shape) for s in array.addressable_shards})}


def check_sweep() -> dict:
    """The sweep on 4 devices against the sweep on one; then the placement of its sharded state."""
    mesh, one = parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])
    runs4, metrics4 = sweep.sweep(SWEEP_CONFIG, LENGTHS, SEEDS, EPOCHS, chunk_epochs=1, mesh=mesh)
    runs1, metrics1 = sweep.sweep(SWEEP_CONFIG, LENGTHS, SEEDS, EPOCHS, chunk_epochs=1, mesh=one)
    # The programs the sweep just compiled, called directly, to see where the runs live.
    count = len(LENGTHS) * len(SEEDS)
    seeds = np.asarray([s for _ in LENGTHS for s in SEEDS], np.int32)
    lengths = np.asarray(sweep.run_lengths(LENGTHS, SEEDS), np.int32)
    strategy = sweep.resolve_strategy("auto")
    fresh = sweep.init_sweep(seeds, lengths, SWEEP_CONFIG)
    runs, data, layout, options = sweep.arrange_sweep(*fresh, SWEEP_CONFIG, lengths.tolist(), strategy, mesh)
    runs, metrics = sweep.train_sweep_chunk(runs, data, SWEEP_CONFIG, 1, strategy, **options)
    return {"device_count": jax.device_count(), "runs": count,
            "metric_shape": list(metrics4["val_acc"].shape),
            "state_runs": int(jax.tree.leaves(runs4)[0].shape[0]),
            "metrics": max_difference((metrics4[k], metrics1[k]) for k in steps.METRICS),
            "state": max_difference(zip(jax.tree.leaves(runs4), jax.tree.leaves(runs1), strict=True)),
            "direct_call_equal": bool(np.array_equal(
                np.asarray(metrics["val_acc"])[layout.positions(count), 0], metrics4["val_acc"][:, 0])),
            "runs_placement": placement(jax.tree.leaves(runs)[0]),
            "data_placement": placement(data.train_inputs)}


def _pre_batch_norm(path) -> bool:
    """Whether a state leaf is a bias feeding a batch norm (or derived from one: its Adam moments,
    its EMA, the batch norm's running mean).

    The loss does not depend on such a bias (the norm subtracts the batch mean), so its true
    gradient is 0 and what it gets is rounding noise, which Adam scales up to steps of about the
    learning rate; another reduction order (a sum split over devices) gives other noise.
    """
    keys = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    if keys[-1] == "mean":
        return True
    if keys[-1] != "bias" or len(keys) < 2 or not keys[-2].startswith("dense"):
        return False
    layer = int(keys[-2].removeprefix("dense"))
    return 1 < layer <= len(GAN_CONFIG.gen_features) and any(k in ("gen", "ema_params") for k in keys)


def check_gan() -> dict:
    """One scanned GAN epoch data parallel on 4 devices against the same epoch on one."""
    mesh = parallel.make_mesh()
    images = np.random.default_rng(7).integers(0, 256, (GAN_IMAGES, 28, 28), dtype=np.uint8)
    state = gan.init_state(GAN_CONFIG)
    noise = gan.grid_noise(state, GAN_CONFIG.latent_dim)
    host_state = jax.device_get(state)  # both runs start from it (each epoch donates its state)
    plain = gan.epoch_function(gan.EpochConfig.of(GAN_CONFIG))
    expected = plain(jax.device_put(host_state, jax.devices()[0]), jax.device_put(images), noise)
    split = gan.epoch_function(gan.EpochConfig.of(GAN_CONFIG), mesh)
    compiled = split.lower(*parallel.put((host_state, images, noise), parallel.replicated(mesh))).compile()
    got = compiled(*parallel.put((host_state, images, noise), parallel.replicated(mesh)))
    hlo = compiled.as_text()
    per_device, first = GAN_CONFIG.batch_size // mesh.size, GAN_CONFIG.gen_features[0]
    state_pairs = list(zip(jax.tree_util.tree_leaves_with_path(got[0]), jax.tree.leaves(expected[0]),
                           strict=True))
    try:  # the batch must split evenly: 18 over 4 devices does not (checked before any file is touched)
        train_and_evaluate(GANConfig(batch_size=18), "/nonexistent/never-made",
                           data=ImageSet(images=images, labels=None, source="random"), mesh=mesh)
        indivisible = "no error"
    except UserError as err:
        indivisible = str(err)
    return {"device_count": jax.device_count(),
            "outputs": max_difference(zip(jax.tree.leaves(got[1:]), jax.tree.leaves(expected[1:]),
                                          strict=True)),
            "state": max_difference((g, e) for (path, g), e in state_pairs if not _pre_batch_norm(path)),
            "state_pre_batch_norm": max_difference((g, e) for (path, g), e in state_pairs
                                                   if _pre_batch_norm(path)),
            "pre_batch_norm_leaves": sum(_pre_batch_norm(path) for (path, _), _ in state_pairs),
            "learning_rate": GAN_CONFIG.learning_rate, "steps": GAN_IMAGES // GAN_CONFIG.batch_size,
            "state_placement": placement(got[0].gen.params["dense1"]["kernel"]),
            # the generator's first product as each device runs it: [batch / devices, features]
            "split_generator_matmul": bool(re.search(rf"f32\[{per_device},{first}\]\S* dot\(", hlo)),
            "whole_generator_matmul": bool(re.search(rf"f32\[{GAN_CONFIG.batch_size},{first}\]\S* dot\(",
                                                     hlo)),
            "all_reduces": hlo.count(" all-reduce("),
            "indivisible_batch": indivisible}


def check_gan_sweep() -> dict:
    """Four GANs (each its own seed and learning rate) in one program, a run per device, against the same
    program on one device; two epochs, in turn (map) and batched (vmap)."""
    import dataclasses

    mesh = parallel.make_mesh()
    images = np.random.default_rng(7).integers(0, 256, (GAN_IMAGES, 28, 28), dtype=np.uint8)
    configs = [dataclasses.replace(GAN_CONFIG, seed=r, learning_rate=1e-4 * (r + 1))
               for r in range(mesh.size)]
    report = {"device_count": jax.device_count()}
    for strategy in ("map", "vmap"):
        results = {}
        for name, where in (("one", None), ("all", mesh)):
            states = gan_sweep.init_sweep(configs)
            noise = gan_sweep.sweep_grid_noise(states, GAN_CONFIG.latent_dim)
            states, data, noise = gan_sweep.place(states, images, noise, where)
            epoch_fn = gan_sweep.sweep_epoch_function(gan_sweep.check_sweep(configs), strategy, where)
            for _ in range(2):
                states, metrics, grids, _ = epoch_fn(states, data, noise)
            results[name] = (states, metrics, grids)
        got, expected = results["all"], results["one"]
        report[strategy] = max_difference(zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True))
        report[f"{strategy}_placement"] = placement(got[0].gen.params["dense1"]["kernel"])
    return report


if __name__ == "__main__":
    print(json.dumps({"sweep": check_sweep, "gan": check_gan, "gan_sweep": check_gan_sweep}[sys.argv[1]]()))

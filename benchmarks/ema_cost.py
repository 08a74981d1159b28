"""The EMA's cost per GAN step: one epoch program with the EMA (decay 0.999) against one without (0).

    python -m benchmarks.ema_cost --dataset idx:DIR        # about 2 minutes on 2 CPU cores

Both programs train from their own initial state on the same images (the first ``--images`` of
``--dataset``'s ``--split``), in scanned epochs of ``images / 64`` steps; after one warm-up epoch
each, the two alternate for ``--repeats`` epochs, so drift in the machine's load hits both alike.
Prints the median milliseconds per step of each and their difference. With decay 0 the EMA is the
raw generator and costs nothing; with 0.999 each step averages the generator's weights and each
epoch ends by measuring the EMA's BatchNorm statistics (``jaxgan.gan.steps.measure_ema_stats``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import steps


def main() -> None:
    """Times both programs and prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ema_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="the images, as experiments' --dataset "
                        "(default: digits; docs/performance.md used idx:DIR with the MNIST test split)")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--images", type=int, default=8000, help="images per epoch (default: 8000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs of each (default: 7)")
    args = parser.parse_args()
    images = jax.device_put(load_images(args.dataset, split=args.split).images[: args.images])
    runs = {}
    for decay in (0.0, 0.999):
        config = GANConfig(ema_decay=decay)
        state = steps.init_state(config)
        epoch = steps.epoch_function(config.batch_size, 10**9, None, config.d_loss, config.grid_mode)
        noise = steps.grid_noise(state, config.latent_dim)
        state = jax.block_until_ready(epoch(state, images, noise)[0])  # compiles
        runs[decay] = {"epoch": epoch, "state": state, "noise": noise, "seconds": []}
    steps_per_epoch = images.shape[0] // GANConfig().batch_size
    for _ in range(args.repeats):
        for run in runs.values():
            began = time.perf_counter()
            run["state"] = jax.block_until_ready(run["epoch"](run["state"], images, run["noise"])[0])
            run["seconds"].append(time.perf_counter() - began)
    ms = {decay: statistics.median(run["seconds"]) / steps_per_epoch * 1e3 for decay, run in runs.items()}
    print(f"{steps_per_epoch} steps per epoch, median of {args.repeats} epochs each")
    print(f"no EMA (decay 0): {ms[0.0]:.2f} ms/step; EMA (decay 0.999): {ms[0.999]:.2f} ms/step; "
          f"the EMA costs {ms[0.999] - ms[0.0]:.2f} ms/step ({ms[0.999] / ms[0.0] - 1:+.1%})")


if __name__ == "__main__":
    main()

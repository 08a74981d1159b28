"""The EMA generator's BatchNorm statistics: how many batches must they be measured on?

The EMA's weights were never trained as they stand, so training measures their BatchNorm statistics
at the end of each epoch (stochastic weight averaging's ``bn_update``): the batch statistics of
``EMA_STATS_BATCHES`` train-mode passes, averaged (``jaxgan.models.gan.recompute_batch_stats``).
This trains GANs, then scores the raw weights, the EMA as training left it, and the EMA with
statistics measured on K batches of 64 for each K of ``--batches``, on the same 2,000 samples of
fixed noise with the project's classifier against its held-out images:

    python -m experiments.train_classifier --dataset idx:DIR --split test --checkpoint-dir CLF
    python -m benchmarks.ema_batch_stats --dataset idx:DIR --classifier-dir CLF --epochs 20 --seeds 0 1 2

DIR holds the MNIST test split. Each GAN trains on the classifier's training part (8,000 images;
the 2,000 it holds out are the FID reference). Prints one line per seed and variant, then the mean
and sample standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.classifier.restore import held_out_reference, restore_classifier
from jaxgan.classifier.steps import holdout_indices
from jaxgan.configs.base import from_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import steps
from jaxgan.models.gan import decode, recompute_batch_stats
from jaxgan.scores import classifier_scores

SAMPLES = 2000


def main() -> None:
    """Trains, scores, prints."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the classifier's images, as its --dataset")
    parser.add_argument("--classifier-dir", required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 64],
                        help="K, the noise batches of 64 the statistics are measured on (default: 4 64)")
    args = parser.parse_args()
    _, record = restore_classifier(args.classifier_dir)
    images = load_images(args.dataset, split=record["split"]).images
    train_idx, _ = holdout_indices(len(images), from_record(ClassifierConfig, record))
    images = jax.device_put(images[train_idx])
    reference = held_out_reference(args.classifier_dir)
    noise = jax.random.normal(jax.random.PRNGKey(12345), (SAMPLES, 100))
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        config = GANConfig(seed=seed)
        state = steps.init_state(config)
        epoch = steps.epoch_function(config.batch_size, 10**9, None, config.d_loss, config.grid_mode)
        grid = steps.grid_noise(state, config.latent_dim)
        began = time.perf_counter()
        for _ in range(args.epochs):
            state, _, _, _ = epoch(state, images, grid)
        jax.block_until_ready(state)
        trained = time.perf_counter() - began
        as_trained = f"EMA as trained (statistics measured on {steps.EMA_STATS_BATCHES} x 64)"
        variants = {"raw": steps.generator_variables(state, "raw"),
                    as_trained: steps.generator_variables(state, "ema")}
        for k in args.batches:
            measure_noise = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), k), (k, 64, 100))
            stats = recompute_batch_stats(state.ema_params, measure_noise)
            variants[f"EMA, statistics measured on {k} x 64"] = {"params": state.ema_params,
                                                                  "batch_stats": stats}
        for name, variables in variants.items():
            scores = jax.device_get(classifier_scores(reference.variables, decode(variables, noise),
                                                      reference.features))
            rows.setdefault(name, []).append((float(scores["inception_score"]), float(scores["fid"])))
            print(f"seed {seed} ({int(state.step)} steps, {trained:.0f} s): {name}: IS "
                  f"{scores['inception_score']:.2f}, FID {scores['fid']:.1f}", flush=True)
    print()
    for name, values in rows.items():
        values = np.asarray(values)
        spread = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(2)
        print(f"{name}: IS {values[:, 0].mean():.2f} ± {spread[0]:.2f}, FID {values[:, 1].mean():.1f} ± "
              f"{spread[1]:.1f} ({', '.join(f'{v:.1f}' for v in values[:, 1])})")


if __name__ == "__main__":
    jnp.zeros(1)  # the backend first, so the timing of the first epoch is the epoch's
    main()

"""Sample quality of jaxgan's GAN against a plain PyTorch eager GAN, trained alike, scored alike.

Both train on the same 8,000 MNIST test images: the training part of the project's classifier
(``jaxgan.classifier.steps.holdout_indices``), so the 2,000 images it holds out, the FID reference,
are unseen by the GANs too. Batch 64, last partial batch dropped (125 steps per epoch), Adam lr 2e-4,
b2 0.999, raw weights (no EMA). jaxgan runs its own jitted epoch program from ``GANConfig(seed=s)``;
torch (``gan_parity.TorchGenerator``/``TorchDiscriminator``, the same architecture and initialisation
rule, PyTorch's own) draws its init, shuffle and noise from ``torch.manual_seed(s)`` and takes the
step of ``gan_parity.torch_step`` (generator first, then the discriminator on the detached fakes).
Variants: b1 0.5 or 0.9; discriminator loss the sum of its two BCE means or their mean (the study's
and jaxgan's default: ``GANConfig.d_loss``).

Each generator draws 2,000 samples from one fixed noise per seed (the same numbers for both
implementations) in three ways: ``eval`` (BatchNorm running statistics; what jaxgan's grids and
scores use), ``train64`` (batch statistics over batches of 64, as during training and as the study
drew its grids; 32 batches of 64, the first 2,000 kept) and ``train2000`` (batch statistics over all
2,000 at once). All are scored with ``jaxgan.scores.classifier_scores`` against the held-out 2,000.
Samples go to ``OUT/samples/<run>_<mode>.npy`` (float32 [2000, 784] in [-1, 1]) and one JSON line
per run and mode to ``OUT/scores.jsonl``; runs whose samples exist are scored again, not retrained.

    # once: the classifier (holds out 2,000 of the 10,000 test images); DIR holds the MNIST test split
    python -m experiments.train_classifier --dataset idx:DIR --split test --checkpoint-dir CLF
    # the comparison, from an environment with torch 2.13 and jaxgan (see gan_parity.py); on 2 shared
    # CPU cores under a load of 4-13 each run took 1.7-3.9 min: these 15 runs 38 min, the 9 below 23 min
    torchenv/bin/python -m benchmarks.gan_vs_torch --mnist DIR --classifier-dir CLF --out OUT \\
        --runs jax-sum-0.5 torch-sum-0.5 jax-sum-0.9 torch-sum-0.9 jax-mean-0.5 --seeds 0 1 2
    torchenv/bin/python -m benchmarks.gan_vs_torch --mnist DIR --classifier-dir CLF --out OUT \\
        --runs jax-sum-0.5 jax-mean-0.5 torch-sum-0.5 --seeds 3 4 5
    torchenv/bin/python -m benchmarks.gan_vs_torch --out OUT --table-only  # OUT/scores.jsonl

Result (FID against the 2,000 held-out images, eval mode, mean ± sample std over seeds 0-5 at b1 0.5,
0-2 at b1 0.9): jaxgan sum 206 ± 28, torch sum 213 ± 17, jaxgan mean 223 ± 18; b1 0.9: jaxgan
564 ± 104, torch 599 ± 57 (no digits yet after 2,500 steps, IS ~1.05). Eval mode scores ~2.5 FID
worse than train mode in every b1 0.5 kind alike (train64 and train2000 within ~1 FID of each other).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.gan_parity import TorchDiscriminator, TorchGenerator, torch_step
from jaxgan.classifier.restore import held_out_reference, restore_classifier
from jaxgan.classifier.steps import holdout_indices
from jaxgan.configs.base import from_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import steps as jgan
from jaxgan.models.gan import generator_for
from jaxgan.scores import classifier_scores

MODES = ("eval", "train64", "train2000")
NUM_SAMPLES = 2000


def training_images(classifier_dir: str, mnist_dir: str) -> np.ndarray:
    """The classifier's training part of the MNIST test split: uint8 [8000, 28, 28]."""
    _, record = restore_classifier(classifier_dir)
    images = load_images(f"idx:{mnist_dir}", split="test").images
    train_idx, _ = holdout_indices(len(images), from_record(ClassifierConfig, record))
    return images[train_idx]


def score_noise(seed: int) -> np.ndarray:
    """The fixed sampling noise of a seed [2048, 100], shared by both implementations."""
    return np.asarray(jax.random.normal(jax.random.PRNGKey(10_000 + seed), (2048, 100)))


def train_jax(images: np.ndarray, seed: int, b1: float, disc_loss: str, epochs: int) -> dict[str, np.ndarray]:
    """Trains jaxgan's GAN; returns its samples {mode: [2000, 784]}."""
    config = GANConfig(seed=seed, b1=b1, ema_decay=0.0, d_loss=disc_loss)
    state = jgan.init_state(config)
    epoch_fn = jgan.epoch_function(jgan.EpochConfig(config.batch_size, 10**9))
    images_dev, grid_noise = jax.device_put(images), jgan.grid_noise(state, config.latent_dim)
    for _ in range(epochs):
        state, _, _, _ = epoch_fn(state, images_dev, grid_noise)
    jax.block_until_ready(state)
    variables = jgan.generator_variables(state)
    apply = generator_for(state.gen.params).apply
    noise = jnp.asarray(score_noise(seed))

    def train_mode(z):
        return apply(variables, z, train=True, mutable=["batch_stats"])[0]

    return {
        "eval": np.asarray(apply(variables, noise[:NUM_SAMPLES], train=False)),
        "train64": np.asarray(jax.lax.map(train_mode, noise.reshape(32, 64, -1))).reshape(2048, -1)[
            :NUM_SAMPLES
        ],
        "train2000": np.asarray(train_mode(noise[:NUM_SAMPLES])),
    }


def train_torch(
    images: np.ndarray, seed: int, b1: float, disc_loss: str, epochs: int
) -> dict[str, np.ndarray]:
    """Trains the PyTorch eager GAN with its own seeded randomness; returns samples {mode: [2000, 784]}."""
    torch.manual_seed(seed)
    gen, disc = TorchGenerator(), TorchDiscriminator()
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(b1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(b1, 0.999))
    real_all = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 127.5 - 1.0)
    steps = len(images) // 64
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for i in range(steps):
            torch_step(
                gen,
                disc,
                opt_g,
                opt_d,
                real_all[order[i * 64 : (i + 1) * 64]],
                torch.randn(64, 100),
                disc_loss,
            )
    noise = torch.from_numpy(score_noise(seed).copy())
    with torch.no_grad():
        gen.eval()
        samples = {"eval": gen(noise[:NUM_SAMPLES]).numpy()}
        gen.train()  # batch statistics (this also moves the running ones, which are not used again)
        samples["train64"] = torch.cat([gen(z) for z in noise.split(64)])[:NUM_SAMPLES].numpy()
        samples["train2000"] = gen(noise[:NUM_SAMPLES]).numpy()
    return samples


def std(values: np.ndarray) -> float:
    """The sample standard deviation (0 for one value)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def table(path: str) -> None:
    """Mean ± std over seeds of IS and FID per run kind and sampling mode, with each seed's value."""
    rows = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows[(r["impl"], r["disc_loss"], r["b1"], r["mode"])].append(r)
    print(
        f"{'implementation':8s} {'D loss':6s} {'b1':>4s} {'mode':9s} {'IS mean ± std':>14s} {'(seeds)':24s} "
        f"{'FID mean ± std':>15s} (seeds)"
    )
    for key in sorted(rows, key=lambda k: (k[3] != "eval", k[3], k[2], k[1] == "mean", k[0])):
        runs = sorted(rows[key], key=lambda r: r["seed"])
        is_, fid = np.array([r["inception_score"] for r in runs]), np.array([r["fid"] for r in runs])
        seeds = "/".join(str(r["seed"]) for r in runs)
        print(
            f"{key[0]:8s} {key[1]:6s} {key[2]:4.1f} {key[3]:9s} {is_.mean():6.2f} ± {std(is_):4.2f}"
            f"  ({'/'.join(f'{v:.2f}' for v in is_)}) {fid.mean():8.1f} ± {std(fid):4.1f}"
            f"  ({'/'.join(f'{v:.1f}' for v in fid)}; seeds {seeds})"
        )
    print("(std: sample standard deviation over the seeds)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["jax-sum-0.5", "torch-sum-0.5", "jax-sum-0.9", "torch-sum-0.9"],
        help="IMPL-DLOSS-B1 with IMPL jax|torch, DLOSS sum|mean (default: %(default)s)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mnist", default=os.environ.get("JAXGAN_MNIST_DIR"),
                        help="the folder of the MNIST test split's IDX files (default: $JAXGAN_MNIST_DIR)")
    parser.add_argument("--classifier-dir", required=False, help="the classifier checkpoint (see above)")
    parser.add_argument("--out", required=True, help="where samples/ and scores.jsonl go")
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of OUT/scores.jsonl and stop"
    )
    args = parser.parse_args()
    scores_path = os.path.join(args.out, "scores.jsonl")
    if args.table_only:
        table(scores_path)
        return
    torch.set_num_threads(1)  # 2 threads on 2 busy shared cores ran ~7x slower
    os.makedirs(os.path.join(args.out, "samples"), exist_ok=True)
    if not args.mnist or not args.classifier_dir:
        parser.error("--mnist (or JAXGAN_MNIST_DIR) and --classifier-dir are needed to train")
    images = training_images(args.classifier_dir, args.mnist)
    reference = held_out_reference(args.classifier_dir)
    print(f"training on {len(images)} images; reference: {reference.source}", flush=True)
    done = set()
    if os.path.exists(scores_path):
        with open(scores_path, encoding="utf-8") as f:
            done = {(r["run"], r["mode"]) for r in map(json.loads, f)}
    for run in args.runs:
        impl, disc_loss, b1 = run.split("-")
        for seed in args.seeds:
            name = f"{run}-seed{seed}"
            paths = {m: os.path.join(args.out, "samples", f"{name}_{m}.npy") for m in MODES}
            seconds = None
            if all(os.path.exists(p) for p in paths.values()):
                samples = {m: np.load(p) for m, p in paths.items()}
            else:
                began = time.perf_counter()
                train = train_jax if impl == "jax" else train_torch
                samples = train(images, seed, float(b1), disc_loss, args.epochs)
                seconds = time.perf_counter() - began
                for m, p in paths.items():
                    np.save(p, samples[m].astype(np.float32))
            for mode in MODES:
                if (name, mode) in done:
                    continue
                s = jax.device_get(
                    classifier_scores(reference.variables, jnp.asarray(samples[mode]), reference.features)
                )
                record = {
                    "run": name,
                    "impl": impl,
                    "disc_loss": disc_loss,
                    "b1": float(b1),
                    "seed": seed,
                    "mode": mode,
                    "epochs": args.epochs,
                    "steps": args.epochs * (len(images) // 64),
                    "inception_score": float(s["inception_score"]),
                    "fid": float(s["fid"]),
                    "train_s": seconds,
                }
                with open(scores_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)
    table(scores_path)


if __name__ == "__main__":
    main()

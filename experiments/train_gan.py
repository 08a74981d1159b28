"""Trains the study's MLP GAN; a checkpoint directory that already holds checkpoints resumes.

    python -m experiments.train_gan --dataset digits --epochs 100     # offline, about a minute on a CPU
    python -m experiments.train_gan                                   # the study: 200 epochs, --dataset auto

Writes config.json, metrics.jsonl (one line per step), samples/step_XXXXXXX.png (a 5x5 grid
from one fixed noise tensor every --sample-every steps), progress.png (start, middle, end)
and losses.png to --workdir, and Orbax checkpoints to --checkpoint-dir. The checkpoints also
keep an EMA of the generator's weights (--ema-decay; experiments.sample uses it by default).

With --classifier-dir (a checkpoint of experiments.train_classifier), every checkpoint also
scores the raw and EMA generators (Inception Score and FID of 2,000 samples of fixed noise
against the classifier's held-out real images): scores.jsonl and scores.png in --workdir.

Reliability: one run at a time per checkpoint directory (a second one refuses); a damaged
newest checkpoint is skipped with a warning; SIGINT or SIGTERM stops at the end of the current
epoch with a checkpoint there and exits 130 or 143; the same command then resumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from experiments import _cli
from jaxgan.configs.gan import GANConfig


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags: the GAN's settings (``GANConfig``, the study's by default), its images and outputs."""
    parser = _cli.parser("train_gan", __doc__)
    _cli.add_image_flags(parser, "which split of the source to train on")
    _cli.add_config_flags(parser, GANConfig)
    parser.add_argument("--classifier-dir", default=None,
                        help="a classifier checkpoint directory (experiments.train_classifier): score "
                             "the raw and EMA generators at every checkpoint against its held-out "
                             "images, into scores.jsonl and scores.png (default: no scores)")
    parser.add_argument("--workdir", default="runs/gan",
                        help="where config.json, metrics.jsonl, samples/ and the figures go "
                             "(default: %(default)s)")
    parser.add_argument("--checkpoint-dir", default="checkpoints/gan",
                        help="Orbax checkpoints of the full training state; one that already "
                             "holds checkpoints of the same settings resumes from the newest "
                             "(default: %(default)s)")
    parser.add_argument("--restart", action="store_true",
                        help="when --checkpoint-dir holds checkpoints but none can be restored, train "
                             "from scratch instead of stopping (the damaged ones are moved to its "
                             "damaged/ folder, never deleted)")
    parser.add_argument("--limit-images", type=_cli.positive_int, default=None, metavar="N",
                        help="train on the first N images of the split only, for quick trials and tests "
                             "(default: all)")
    _cli.add_distributed_flags(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the images, trains (or resumes) the GAN, and prints where its outputs are."""
    args = parse_args(argv)
    config = _cli.config_from_args(GANConfig, args)
    config.validate()
    _cli.initialize_distributed(args)  # before anything else touches JAX's devices
    _cli.writable_dir(args.workdir)
    from tqdm import tqdm

    from jaxgan.gan.train import train_and_evaluate
    from jaxgan.scores import score_text

    print(_cli.describe_devices())
    image_set = _cli.load_image_flags(args)
    images = image_set.images if args.limit_images is None else image_set.images[: args.limit_images]
    reference = None
    if args.classifier_dir is not None:  # a bad classifier stops the run here, before any training
        from jaxgan.classifier.restore import held_out_reference

        reference = held_out_reference(args.classifier_dir, data_dir=args.data_dir)
        print(f"scoring every checkpoint against {reference.source}")
    bar = None

    def on_progress(info: dict) -> None:
        """Opens the bar at the start (or resumed) epoch, then moves it once per epoch."""
        nonlocal bar
        if info["event"] == "start":
            if info["resumed"]:
                print(f"resuming from the checkpoint at step {info['step']} (epoch {info['epoch']}) "
                      f"in {args.checkpoint_dir}")
            bar = tqdm(total=info["epochs"], initial=info["epoch"], desc="gan", unit="epoch")
            return
        if info["event"] == "scores":
            found = [f"{w}: IS {score_text(info[f'inception_score_{w}'])}, FID {score_text(info[f'fid_{w}'])}"
                     for w in ("raw", "ema") if f"fid_{w}" in info]
            bar.write(f"step {info['step']} scores ({info['seconds']:.1f} s): {'; '.join(found)}")
            return
        bar.update(info["epoch"] - bar.n)
        bar.set_postfix(step=info["step"], d_loss=f"{info['d_loss']:.3f}", g_loss=f"{info['g_loss']:.3f}",
                        dx=f"{info['d_real']:.2f}", dgz=f"{info['d_fake']:.2f}",
                        steps_s=f"{info['steps_per_s']:.1f}")

    try:
        result = train_and_evaluate(images, config, workdir=args.workdir, checkpoint_dir=args.checkpoint_dir,
                                    source=image_set.source, progress=on_progress, restart=args.restart,
                                    reference=reference)
    finally:
        if bar is not None:
            bar.close()
    last = result["last_epoch"]
    if last:
        print(f"compiled in {result['compile_s']:.1f} s; {result['steps_per_s']:.1f} steps/s over "
              f"{result['train_s']:.1f} s of training"
              + (f"; {result['score_s']:.1f} s scoring" if reference is not None else ""))
        print(f"epoch {result['epoch']} (step {result['step']}) means: d_loss {last['d_loss']:.4f}, "
              f"g_loss {last['g_loss']:.4f}, D(x) {last['d_real']:.3f}, D(G(z)) {last['d_fake']:.3f}")
    else:
        print(f"nothing to train: the checkpoint is already at epoch {result['epoch']} of {config.epochs}")
    scored = ", scores.jsonl, scores.png" if reference is not None else ""
    print(f"outputs: {args.workdir}/ (metrics.jsonl, samples/, progress.png, losses.png{scored}); "
          f"checkpoints: {args.checkpoint_dir}")


if __name__ == "__main__":
    _cli.run(main)

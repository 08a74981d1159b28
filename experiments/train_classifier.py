"""Trains the digit classifier that judges GAN samples; prints its held-out accuracy.

    python -m experiments.train_classifier --dataset digits          # offline, about a minute on a CPU
    python -m experiments.train_classifier --dataset idx:DIR --split test   # DIR: the MNIST IDX files

Its checkpoint directory is what --classifier-dir of experiments.train_gan and
experiments.interpolate takes. One run at a time per checkpoint directory; a damaged newest
checkpoint is set aside with a warning; SIGINT or SIGTERM stops after the current epoch's
checkpoint and exits 130 or 143; the same command then resumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from experiments import _cli
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.errors import UserError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags: the classifier's settings (``ClassifierConfig``), its images and outputs."""
    parser = _cli.parser("train_classifier", __doc__)
    _cli.add_image_flags(parser, "which split of the source to load; the held-out part is cut from it")
    _cli.add_config_flags(parser, ClassifierConfig)
    parser.add_argument("--checkpoint-dir", default="checkpoints/classifier",
                        help="Orbax checkpoints, one per epoch; a directory that holds a run with "
                             "the same settings resumes it (default: %(default)s)")
    parser.add_argument("--workdir", default="runs/classifier",
                        help="where config.json and metrics.jsonl (one line per epoch) go "
                             "(default: %(default)s)")
    parser.add_argument("--restart", action="store_true",
                        help="when --checkpoint-dir holds checkpoints but none can be restored, train "
                             "from scratch instead of stopping (the damaged ones are moved to its "
                             "damaged/ folder, never deleted)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the images, trains, checkpoints, and prints the held-out accuracy."""
    args = parse_args(argv)
    config = _cli.config_from_args(ClassifierConfig, args, dataset=args.dataset, split=args.split)
    config.validate()
    _cli.writable_dir(args.workdir)
    from tqdm import tqdm

    from jaxgan.classifier.steps import check_split
    from jaxgan.classifier.train import train_and_evaluate

    print(_cli.describe_devices())
    image_set = _cli.load_image_flags(args)
    if image_set.labels is None:
        raise UserError(f"{image_set.source} has no labels; the classifier needs labelled digits")
    check_split(len(image_set.images), config)  # before the progress bar
    with tqdm(total=config.epochs, desc="classifier", unit="epoch") as bar:

        def on_epoch(metrics: dict) -> None:
            """Moves the bar to the finished epoch and shows its numbers."""
            bar.n = metrics["epoch"]
            bar.set_postfix(loss=f"{metrics['train_loss']:.4f}",
                            holdout_acc=f"{metrics['holdout_accuracy']:.4f}")

        _, result = train_and_evaluate(image_set.images, image_set.labels, config,
                                       checkpoint_dir=args.checkpoint_dir, source=image_set.source,
                                       workdir=args.workdir, restart=args.restart, on_epoch=on_epoch)
    if result["start_epoch"] >= config.epochs:
        print(f"{args.checkpoint_dir} already holds all {config.epochs} epochs of this run; evaluated it")
    elif result["start_epoch"]:
        print(f"resumed from the checkpoint at epoch {result['start_epoch']} in {args.checkpoint_dir}")
    print(f"trained on {result['num_train']} images, held out {result['num_holdout']}")
    print(f"held-out accuracy after {result['epoch']} epochs: {100 * result['holdout_accuracy']:.2f}%")
    print(f"checkpoint: {args.checkpoint_dir}; metrics: {args.workdir}/metrics.jsonl")


if __name__ == "__main__":
    _cli.run(main)

"""Trains the digit classifier that judges GAN samples; prints its held-out accuracy.

    python -m experiments.train_classifier --dataset idx:../shared/data/mnist --split test
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from experiments import _cli
from jaxgan.errors import UserError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags; every default is the project's setting."""
    parser = argparse.ArgumentParser(prog="python -m experiments.train_classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _cli.add_image_flags(parser, "which split of the source to load; the held-out part is cut from it")
    parser.add_argument("--epochs", type=_cli.positive_int, default=20,
                        help="passes over the training part (default: %(default)s)")
    parser.add_argument("--batch-size", type=_cli.positive_int, default=128,
                        help="images per Adam step (default: %(default)s)")
    parser.add_argument("--learning-rate", type=_cli.positive_float, default=1e-3,
                        help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--holdout", type=_cli.float_between(0.0, 1.0), default=0.2,
                        help="fraction of the images held out for evaluation, drawn from the seed; "
                             "0.2 of the 10,000 MNIST test images trains on 8,000 and holds out "
                             "2,000 (default: %(default)s)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of the split, the initialisation, shuffling and dropout "
                             "(default: %(default)s)")
    parser.add_argument("--checkpoint-dir", default="checkpoints/classifier",
                        help="Orbax checkpoints, one per epoch; a directory that holds a run with "
                             "the same settings resumes it (default: %(default)s)")
    parser.add_argument("--workdir", default="runs/classifier",
                        help="where config.json and metrics.jsonl (one line per epoch) go "
                             "(default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the images, trains, checkpoints, and prints the held-out accuracy."""
    args = parse_args(argv)
    _cli.writable_dir(args.workdir)
    from tqdm import tqdm

    from jaxgan.train.classifier import ClassifierConfig, holdout_size, train_classifier

    print(_cli.describe_devices())
    image_set = _cli.load_image_flags(args)
    if image_set.labels is None:
        raise UserError(f"{image_set.source} has no labels; the classifier needs labelled digits")
    num_images = len(image_set.images)
    num_train = num_images - holdout_size(num_images, args.holdout)  # checked before the progress bar
    if args.batch_size > num_train:
        raise UserError(f"the batch size {args.batch_size} is larger than the {num_train} training images "
                        f"({num_images} images less {num_images - num_train} held out)")
    config = ClassifierConfig(epochs=args.epochs, batch_size=args.batch_size,
                              learning_rate=args.learning_rate, holdout_fraction=args.holdout,
                              seed=args.seed, dataset=args.dataset, split=args.split)
    with tqdm(total=args.epochs, desc="classifier", unit="epoch") as bar:

        def on_epoch(metrics: dict) -> None:
            """Moves the bar to the finished epoch and shows its numbers."""
            bar.n = metrics["epoch"]
            bar.set_postfix(loss=f"{metrics['train_loss']:.4f}",
                            holdout_acc=f"{metrics['holdout_accuracy']:.4f}")

        _, result = train_classifier(image_set.images, image_set.labels, config,
                                  checkpoint_dir=args.checkpoint_dir, source=image_set.source,
                                  workdir=args.workdir, on_epoch=on_epoch)
    if result["start_epoch"] >= args.epochs:
        print(f"{args.checkpoint_dir} already holds all {args.epochs} epochs of this run; evaluated it")
    elif result["start_epoch"]:
        print(f"resumed from the checkpoint at epoch {result['start_epoch']} in {args.checkpoint_dir}")
    print(f"trained on {result['num_train']} images, held out {result['num_holdout']}")
    print(f"held-out accuracy after {result['epoch']} epochs: {100 * result['holdout_accuracy']:.2f}%")
    print(f"checkpoint: {args.checkpoint_dir}; metrics: {args.workdir}/metrics.jsonl")


if __name__ == "__main__":
    _cli.run(main)

"""Trains the digit classifier that judges GAN samples; prints its held-out accuracy.

    python -m experiments.train_classifier --dataset digits          # offline, about a minute on a CPU
    python -m experiments.train_classifier --dataset idx:DIR --split test   # DIR: the MNIST IDX files

The run is one folder, --workdir (default runs/classifier): config.json, metrics.jsonl and
its checkpoints; that folder is what --classifier-dir of experiments.train_gan and
experiments.interpolate takes. A folder that holds this run resumes it, one that holds another
is refused (--restart moves it aside); one run at a time per folder; a damaged newest
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
    """The flags: the classifier's settings (``ClassifierConfig``), its images and its folder."""
    parser = _cli.parser("train_classifier", __doc__)
    _cli.add_image_flags(parser, "which split of the source to load; the held-out part is cut from it")
    _cli.add_config_flags(parser, ClassifierConfig)
    _cli.add_run_flags(parser, "classifier", "config.json, metrics.jsonl (one line per epoch)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the images, trains in its run folder, checkpoints, and prints the held-out accuracy."""
    args = parse_args(argv)
    config = _cli.config_from_args(ClassifierConfig, args, dataset=args.dataset, split=args.split)
    config.validate()
    from jaxgan.classifier import train
    from jaxgan.classifier.steps import check_split

    train.check_workdir(config, args.workdir, checkpoint_dir=args.checkpoint_dir, restart=args.restart)
    print(_cli.describe_devices())
    image_set = _cli.load_image_flags(args)
    if image_set.labels is None:
        raise UserError(f"{image_set.source} has no labels; the classifier needs labelled digits")
    check_split(len(image_set.images), config)  # before the progress bar
    train.check_workdir(config, args.workdir, data=image_set, checkpoint_dir=args.checkpoint_dir,
                        restart=args.restart)
    with _cli.progress_bars() as progress:
        result = train.train_and_evaluate(config, args.workdir, data=image_set,
                                          checkpoint_dir=args.checkpoint_dir,
                                          restart=args.restart, progress=progress)
    if result["start_epoch"] >= config.epochs:
        print(f"{args.workdir} already holds all {config.epochs} epochs of this run; evaluated it")
    print(f"trained on {result['num_train']} images, held out {result['num_holdout']}")
    print(f"held-out accuracy after {result['epoch']} epochs: {100 * result['holdout_accuracy']:.2f}%")
    print(f"outputs: {args.workdir}/ (config.json, metrics.jsonl); checkpoints: {result['checkpoint_dir']}")


if __name__ == "__main__":
    _cli.run(main)

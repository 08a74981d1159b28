"""The whole study in one command: Part 1 sweep, classifier, GAN, scores, interpolation, REPORT.md.

    python -m experiments.reproduce --quick                 # a few minutes on a laptop CPU
    python -m experiments.reproduce --dataset idx:../shared/data/mnist --split test

Everything goes to --workdir (checkpoints in its checkpoints/ folder, never the default
checkpoints/); a rerun in the same workdir starts that run over.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from experiments import _cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags (--tiny and the per-stage epoch overrides are for tests and are not listed)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="auto",
                        help="image source: mnist (tfds), idx:DIR (raw IDX files), digits (sklearn, "
                             "offline) or auto (mnist if prepared, else digits) (default: %(default)s)")
    parser.add_argument("--split", default="train", choices=("train", "test"),
                        help="which split of the source the classifier and GAN use (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="tfds data directory for mnist/auto")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of every stage (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="shrink every stage (lengths 5 10, 2 seeds, 15 palindrome epochs, classifier "
                             "10 epochs, GAN 3 epochs but at least 1000 steps, pair confidence 0.7) to "
                             "finish in minutes on a CPU; the report says so")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    for name in ("palindrome-epochs", "classifier-epochs", "gan-epochs"):
        parser.add_argument(f"--{name}", type=_cli.positive_int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="runs/reproduce",
                        help="where REPORT.md, every figure and the checkpoints go (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Picks the sizes, runs the study, and prints the report's path, the times and the scores."""
    args = parse_args(argv)
    _cli.writable_dir(args.workdir)
    from jaxgan import report

    settings = report.TINY if args.tiny else report.QUICK if args.quick else report.STUDY
    overrides = {k: v for k, v in (("palindrome_epochs", args.palindrome_epochs),
                                   ("classifier_epochs", args.classifier_epochs),
                                   ("gan_epochs", args.gan_epochs)) if v is not None}
    if overrides:
        settings = dataclasses.replace(settings, name=f"{settings.name} (with overrides)"
                                       if settings.name != "study" else "custom", **overrides)
    print(_cli.describe_devices())
    result = report.reproduce(settings, workdir=args.workdir, dataset=args.dataset, split=args.split,
                              data_dir=args.data_dir, seed=args.seed)
    print(f"classifier held-out accuracy: {100 * result['holdout_accuracy']:.2f}%")
    for label, row in result["scores"]["rows"].items():
        print(f"{label}: IS {row['inception_score']:.2f} ± {row['inception_std']:.2f}, FID {row['fid']:.2f}")
    print(f"wrote {result['report']} ({sum(result['seconds'].values()):.0f} s in all)")


if __name__ == "__main__":
    _cli.run(main)

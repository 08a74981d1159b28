"""The whole study in one command: Part 1 sweep, classifier, GAN, scores, interpolation, REPORT.md.

    python -m experiments.reproduce --quick                 # a few minutes on a laptop CPU
    python -m experiments.reproduce --dataset mnist         # the study's size (hours on a CPU)

Everything goes to --workdir (default runs/reproduce, or runs/reproduce-quick with --quick),
each stage a run in a sub-folder of its own. Ctrl-C (or SIGTERM) stops at the next checkpoint of
the running stage; the same command then continues every stage where it stopped and skips
finished ones; --restart moves the earlier run aside and starts over.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from experiments import _cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags: the preset (the study's, --quick or --tiny), images, seed, per-stage epochs, outputs."""
    parser = _cli.parser("reproduce", __doc__)
    _cli.add_image_flags(parser, "which split of the source the classifier and GAN use")
    parser.add_argument("--seed", type=_cli.seed, default=0,
                        help="seed of every stage (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="shrink every stage to finish in minutes on a CPU (the sizes are in "
                             "jaxgan/configs/reproduce.py, QUICK); the report says so")
    parser.add_argument("--tiny", action="store_true",
                        help="shrink every stage as far as still runs it, to check the pipeline in seconds "
                             "(the test suite's size; its numbers mean nothing)")
    for stage in ("palindrome", "classifier", "gan"):
        parser.add_argument(f"--{stage}-epochs", type=_cli.positive_int, default=None, metavar="N",
                            help=f"train the {stage} stage for N epochs instead of the preset's; the report "
                                 f"names the run 'with overrides' (default: the preset's)")
    parser.add_argument("--workdir", default=None,
                        help="the run's folder: REPORT.md, every figure, and each stage's run (with its "
                             "checkpoints) in a sub-folder; a folder that holds this run continues it, one "
                             "that holds another is refused (default: runs/reproduce, runs/reproduce-quick "
                             "with --quick, runs/reproduce-tiny with --tiny)")
    parser.add_argument("--restart", action="store_true",
                        help="start over: what --workdir held is moved aside to a folder beside it named "
                             "WORKDIR.replaced-<UTC time>, never deleted")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Picks the sizes, runs the study, and prints the report's path, the times and the scores."""
    args = parse_args(argv)
    from jaxgan import reproduce
    from jaxgan.configs.reproduce import get_config
    from jaxgan.scores import score_text

    config = get_config("tiny" if args.tiny else "quick" if args.quick else "study")
    if args.workdir is None:  # one folder per size, so the quick run and the study's never meet
        args.workdir = "runs/reproduce" if config.name == "study" else f"runs/reproduce-{config.name}"
    overrides = {"palindrome": args.palindrome_epochs, "classifier": args.classifier_epochs,
                 "gan": args.gan_epochs}
    overrides = {stage: dataclasses.replace(getattr(config, stage), epochs=epochs)
                 for stage, epochs in overrides.items() if epochs is not None}
    if overrides:
        name = f"{config.name} (with overrides)" if config.name != "study" else "custom"
        config = dataclasses.replace(config, name=name, **overrides)
    reproduce.check_workdir(config, args.workdir, dataset=args.dataset, split=args.split, seed=args.seed,
                            restart=args.restart)
    print(_cli.describe_devices())
    from tqdm import tqdm

    with _cli.progress_bars() as progress:
        result = reproduce.reproduce(config, workdir=args.workdir, dataset=args.dataset, split=args.split,
                                     data_dir=args.data_dir, seed=args.seed, restart=args.restart,
                                     log=tqdm.write, progress=progress)
    print(f"classifier held-out accuracy: {100 * result['holdout_accuracy']:.2f}%")
    for label, row in result["scores"]["rows"].items():
        if "runs" in row:  # a trained generator: the mean ± std over the GAN's runs
            print(f"{label}, mean ± std over {row['runs']} runs: IS {score_text(row['inception_score'])} ± "
                  f"{score_text(row['inception_score_std_over_runs'])}, FID {score_text(row['fid'])} ± "
                  f"{score_text(row['fid_std'])}")
        else:
            print(f"{label}: IS {score_text(row['inception_score'])} ± {score_text(row['inception_std'])}, "
                  f"FID {score_text(row['fid'])}")
    print(f"Part 1: {result['finding']}")
    print(f"wrote {result['report']} ({sum(result['seconds'].values()):.0f} s in all)")


if __name__ == "__main__":
    _cli.run(main)

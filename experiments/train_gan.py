"""Trains the study's MLP GAN in its run folder; a folder that already holds the run resumes it.

    python -m experiments.train_gan --dataset digits --epochs 100     # offline, about a minute on a CPU
    python -m experiments.train_gan                                   # the study: 200 epochs, --dataset auto

The run is one folder, --workdir (default runs/gan): config.json, metrics.jsonl (one line per
step), samples/step_XXXXXXX.png (a 5x5 grid from one fixed noise tensor every --sample-every
steps), progress.png (start, middle, end), losses.png and the Orbax checkpoints (checkpoints/).
The checkpoints also keep an EMA of the generator's weights (--ema-decay; experiments.sample
uses it by default).

With --classifier-dir (a run of experiments.train_classifier), every checkpoint also
scores the raw and EMA generators (Inception Score and FID of 2,000 samples of fixed noise
against the classifier's held-out real images): scores.jsonl and scores.png in --workdir.

With --seeds (or several values of --lr, --b1 or --d-loss) it is a sweep: one GAN per seed and
setting, every combination, all trained in one jitted program, each run in its own sub-folder of
--workdir (default runs/gan-sweep), a GAN run folder like any other:

    python -m experiments.train_gan --dataset digits --epochs 100 --seeds 0 1 2 3 --workdir runs/gan-seeds
    python -m experiments.train_gan --dataset digits --seeds 0 1 --b1 0.5 0.9 --workdir runs/gan-b1

The sweep's folder holds its record (config.json), summary.md (per setting the mean +- std over
the seeds of FID and IS, raw and EMA, and the best run; without --classifier-dir, of the final
losses) and the runs' folders (seed0/, b10.5-seed0/, ...); resuming, signals and damaged
checkpoints behave as for one GAN, for every run together.

Reliability: a folder that holds this run resumes it; one that holds another run is refused
(--restart moves it aside); one run at a time per folder; a damaged newest checkpoint is
skipped with a warning; SIGINT or SIGTERM stops at the end of the current epoch with a
checkpoint there and exits 130 or 143; the same command then resumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from experiments import _cli
from jaxgan.configs.gan import GANConfig, check_batch
from jaxgan.gan.train_sweep import GRID
from jaxgan.runtime.parallel import STRATEGIES


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags: the GAN's settings (``GANConfig``, the study's by default), its images and its folder."""
    parser = _cli.parser("train_gan", __doc__)
    _cli.add_image_flags(parser, "which split of the source to train on")
    _cli.add_config_flags(parser, GANConfig)
    parser.add_argument("--classifier-dir", default=None,
                        help="a classifier run folder (experiments.train_classifier's --workdir) or its "
                             "checkpoint directory: score the raw and EMA generators at every checkpoint "
                             "against its held-out images, into scores.jsonl and scores.png (default: no "
                             "scores)")
    _cli.add_run_flags(parser, "gan", "config.json, metrics.jsonl, samples/, progress.png, losses.png")
    parser.add_argument("--limit-images", type=_cli.positive_int, default=None, metavar="N",
                        help="train on the first N images of the split only, for quick trials and tests "
                             "(default: all; the run's record holds N)")
    _cli.add_distributed_flags(parser)
    group = parser.add_argument_group(
        "a sweep (one GAN per seed and setting, in one program)",
        "--lr, --b1 and --d-loss take several values too; the sweep trains every combination of them "
        "and the seeds")
    group.add_argument("--seeds", type=_cli.seed, nargs="+", default=None, metavar="SEED",
                       help="train one GAN per seed (with --seed's meaning), each in its own sub-folder of "
                            "--workdir (default: one run, --seed)")
    group.add_argument("--sweep-strategy", default="auto", choices=STRATEGIES,
                       help="how one program trains the runs: map in turn (each with its separate run's "
                            "arithmetic), vmap batched (to float rounding; best on GPU/TPU), auto picks map "
                            "on CPU and vmap on accelerators (default: %(default)s)")
    for action in parser._actions:  # the grid's settings keep their one definition; they take lists here
        if action.dest in GRID:
            action.nargs = "+"
        elif action.dest == "workdir":  # runs/gan, or runs/gan-sweep for a sweep
            action.default = None
            action.help = action.help.replace("%(default)s", "runs/gan, or runs/gan-sweep for a sweep")
    args = parser.parse_args(argv)
    # A grid setting's first value stands in the flag (what config_from_args reads); all of them in grid.
    args.grid = {name: getattr(args, name) for name in GRID if getattr(args, name) is not None}
    for name, values in args.grid.items():
        setattr(args, name, values[0])
    args.sweep = args.seeds is not None or any(len(values) > 1 for values in args.grid.values())
    if args.seeds is not None and args.seed is not None:
        parser.error("--seed is one run's seed; a sweep takes its seeds from --seeds")
    if args.sweep and args.checkpoint_dir is not None:
        parser.error("a sweep keeps each run's checkpoints in its own sub-folder of --workdir, so it takes "
                     "no --checkpoint-dir")
    if args.sweep and args.workdir is None:
        args.workdir = "runs/gan-sweep"
    elif args.workdir is None:
        args.workdir = "runs/gan"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the images, trains (or resumes) the GAN in its folder, and prints where its outputs are."""
    args = parse_args(argv)
    config = _cli.config_from_args(GANConfig, args)
    config.validate()
    if args.sweep:
        sweep_main(args, config)
        return
    _cli.initialize_distributed(args)  # before anything else touches JAX's devices
    from jaxgan.gan import train

    train.check_workdir(config, args.workdir, checkpoint_dir=args.checkpoint_dir, restart=args.restart)
    print(_cli.describe_devices())
    image_set = _images(args)
    check_batch(config.batch_size, len(image_set.images))  # the images first, then what the folder holds
    train.check_workdir(config, args.workdir, data=image_set, checkpoint_dir=args.checkpoint_dir,
                        restart=args.restart)
    reference = None
    if args.classifier_dir is not None:  # a bad classifier stops the run here, before any training
        from jaxgan.classifier.restore import held_out_reference

        reference = held_out_reference(args.classifier_dir, data_dir=args.data_dir)
        print(f"scoring every checkpoint against {reference.source}")
    with _cli.progress_bars() as progress:
        result = train.train_and_evaluate(config, args.workdir, data=image_set,
                                          checkpoint_dir=args.checkpoint_dir,
                                          restart=args.restart, progress=progress, reference=reference)
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
          f"checkpoints: {result['checkpoint_dir']}")


def _images(args: argparse.Namespace):
    """The images the flags name, the first --limit-images of them."""
    from jaxgan.data.images import ImageSet

    image_set = _cli.load_image_flags(args)
    if args.limit_images is not None:
        image_set = ImageSet(images=image_set.images[: args.limit_images], labels=None,
                             source=image_set.source)
    return image_set


def sweep_main(args: argparse.Namespace, base: GANConfig) -> None:
    """Trains (or resumes) the sweep the flags name in its folder, and prints its summary."""
    _cli.initialize_distributed(args)
    from jaxgan.gan import train_sweep

    seeds = args.seeds if args.seeds is not None else [base.seed]
    configs = train_sweep.grid_configs(base, seeds, args.grid)
    train_sweep.check_workdir(configs, args.workdir, restart=args.restart)
    print(_cli.describe_devices())
    image_set = _images(args)
    check_batch(base.batch_size, len(image_set.images))
    train_sweep.check_workdir(configs, args.workdir, data=image_set, restart=args.restart)
    reference = None
    if args.classifier_dir is not None:
        from jaxgan.classifier.restore import held_out_reference

        reference = held_out_reference(args.classifier_dir, data_dir=args.data_dir)
        print(f"scoring every checkpoint of every run against {reference.source}")
    print(f"{len(configs)} runs in one program: {', '.join(train_sweep.run_names(configs))}")
    with _cli.progress_bars() as progress:
        result = train_sweep.train_sweep_and_evaluate(configs, args.workdir, data=image_set,
                                                      restart=args.restart, progress=progress,
                                                      reference=reference, strategy=args.sweep_strategy)
    if result["steps_per_s"] is not None:
        print(f"compiled in {result['compile_s']:.1f} s; {result['steps_per_s']:.1f} steps/s of all "
              f"{len(configs)} runs over {result['train_s']:.1f} s of training"
              + (f"; {result['score_s']:.1f} s scoring" if reference is not None else ""))
    else:
        print(f"nothing to train: the checkpoints are already at epoch {result['epoch']} of {base.epochs}")
    print(result["summary"])
    print(f"outputs: {args.workdir}/ (summary.md, config.json, and one run folder each: "
          f"{', '.join(result['names'])})")


if __name__ == "__main__":
    _cli.run(main)

"""Latent interpolation from a restored GAN generator: rows of images between pairs of different digits.

    python -m experiments.interpolate --checkpoint-dir checkpoints/gan \
        --classifier-dir checkpoints/classifier --pairs 4 --steps 7 --mode slerp --out interpolation.png

With --classifier-dir, pairs are drawn until the classifier calls the two ends different
classes, each with probability >= --threshold, and every image is titled with its predicted
class and confidence. Without it, pairs are random (the study's way). --weights picks the EMA
of the generator's weights (the default when the checkpoint keeps one) or the raw weights. The
latents and predictions go to the --out file's stem + .json, so the figure can be remade.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from experiments import _cli
from jaxgan.errors import UserError


def _probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags."""
    parser = argparse.ArgumentParser(prog="python -m experiments.interpolate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _cli.add_generator_flags(parser)
    parser.add_argument("--pairs", type=_cli.positive_int, default=4, help="rows (default: %(default)s)")
    parser.add_argument("--steps", type=_cli.positive_int, default=7,
                        help="images between the two ends of a row (default: %(default)s)")
    parser.add_argument("--mode", default="linear", choices=("linear", "slerp"),
                        help="straight line or great circle between the ends (default: %(default)s)")
    parser.add_argument("--classifier-dir", default=None,
                        help="a classifier checkpoint directory (experiments.train_classifier) that "
                             "checks the ends and titles every image (default: none, random pairs)")
    parser.add_argument("--threshold", type=_probability, default=0.9,
                        help="confidence both ends need (default: %(default)s)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of the latent pairs (default: %(default)s)")
    parser.add_argument("--out", default="interpolation.png",
                        help="the PNG to write; the JSON goes beside it (default: %(default)s)")
    return parser.parse_args(argv)


def _check_classifier_dir(directory: str) -> None:
    """Raises UserError unless ``directory`` holds classifier checkpoints (not a GAN's, say)."""
    from jaxgan import checkpoint
    from jaxgan.train.classifier import KIND

    if not os.path.isdir(directory):
        raise UserError(f"no classifier checkpoint directory at {directory}")
    kind = checkpoint.kind_at(directory)
    if kind is None:
        raise UserError(f"no checkpoint in {directory}; python -m experiments.train_classifier "
                        f"writes classifier checkpoints")
    if kind != KIND:
        raise UserError(f"--classifier-dir {directory} holds a {kind!r} checkpoint, not a classifier one "
                        f"(python -m experiments.train_classifier writes those)")


def main(argv: Sequence[str] | None = None) -> None:
    """Restores the models, finds the pairs, writes the figure and its JSON (both or neither)."""
    args = parse_args(argv)
    if not args.out.endswith(".png"):
        raise UserError(f"--out must name a .png file, not {args.out}")
    _cli.writable_dir(os.path.dirname(os.path.abspath(args.out)))
    if args.classifier_dir is not None:
        _check_classifier_dir(args.classifier_dir)  # before minutes of GAN work, not after
    json_path = os.path.splitext(args.out)[0] + ".json"
    import jax

    from jaxgan import interpolate
    from jaxgan.plotting.interpolation import rows_figure
    from jaxgan.train.gan import restore_generator

    print(_cli.describe_devices())
    gen_variables, gan_config = restore_generator(args.checkpoint_dir, args.step, weights=args.weights)
    if args.classifier_dir is None:
        classify_fn = None
        print("no --classifier-dir: drawing random pairs as the study did; their classes are unchecked")
    else:
        classify_fn = interpolate.load_classify_fn(args.classifier_dir)
    pair_key = jax.random.PRNGKey(args.seed)
    rows = interpolate.interpolation_rows(gen_variables, pair_key, num_pairs=args.pairs,
                                          num_between=args.steps, mode=args.mode, classify_fn=classify_fn,
                                          threshold=args.threshold)
    step = gan_config["checkpoint_step"]
    classifier_dir = os.path.abspath(args.classifier_dir) if args.classifier_dir else None
    weights = gan_config["weights"]
    record = interpolate.rows_record(rows, checkpoint_dir=os.path.abspath(args.checkpoint_dir),
                                     checkpoint_step=step, weights=weights, seed=args.seed,
                                     classifier_dir=classifier_dir)
    checked = "classifier-checked" if rows["checked"] else "random"
    title = f"{args.mode} interpolation, {checked} pairs, generator ({weights} weights) at step {step}"
    tmp_json = f"{json_path}.tmp"
    with open(tmp_json, "w", encoding="utf-8") as f:
        json.dump(record, f)
    rows_figure(rows["images"], rows["probs"], args.out, title=title)
    os.replace(tmp_json, json_path)
    if rows["probs"] is not None:
        ends = rows["probs"][:, [0, -1]]
        for i, (a, b) in enumerate(ends):
            print(f"row {i}: {a.argmax()} ({a.max():.2f}) -> {b.argmax()} ({b.max():.2f})")
    print(f"wrote {args.out} and {json_path}: {args.pairs} rows of {args.steps + 2} images "
          f"from {args.checkpoint_dir} (step {step}, {weights} weights)")


if __name__ == "__main__":
    _cli.run(main)

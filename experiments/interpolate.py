r"""Latent interpolation from a restored GAN generator: rows of images between pairs of different digits.

    python -m experiments.interpolate --gan-dir runs/gan --classifier-dir runs/classifier \
        --pairs 4 --steps 7 --mode slerp --out interpolation.png

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
from jaxgan.configs.gan import MAX_FIGURE_IMAGES, InterpolationConfig
from jaxgan.errors import UserError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags: which generator, the rows (``InterpolationConfig``), the classifier and the output."""
    parser = _cli.parser("interpolate", __doc__)
    _cli.add_generator_flags(parser)
    _cli.add_config_flags(parser, InterpolationConfig)
    parser.add_argument("--classifier-dir", default=None,
                        help="a classifier run folder (experiments.train_classifier's --workdir) or its "
                             "checkpoint directory, which checks the ends and titles every image (default: "
                             "none, random pairs)")
    parser.add_argument("--out", default="interpolation.png",
                        help="the PNG to write; the JSON goes beside it (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Restores the models, finds the pairs, writes the figure and its JSON (both or neither)."""
    args = parse_args(argv)
    config = _cli.config_from_args(InterpolationConfig, args)
    config.validate()
    if not args.out.endswith(".png"):
        raise UserError(f"--out must name a .png file, not {args.out}")
    json_path = os.path.splitext(args.out)[0] + ".json"
    _cli.output_files([("--out", args.out), ("the JSON beside --out", json_path)])
    # Settings under which the rows cannot be made or drawn are refused before any work.
    from jaxgan.gan.interpolate import MAX_TRIES
    from jaxgan.plotting.interpolation import too_large

    if args.classifier_dir is not None and config.pairs > MAX_TRIES:
        raise UserError(f"--pairs {config.pairs} can never be found: the search for classifier-checked pairs "
                        f"draws at most {MAX_TRIES}")
    problem = too_large(config.pairs, config.steps + 2)
    if problem is not None:
        raise UserError(f"--pairs {config.pairs} --steps {config.steps} cannot be drawn: {problem}")
    num_images = config.pairs * (config.steps + 2)
    if num_images > MAX_FIGURE_IMAGES:
        raise UserError(f"--pairs {config.pairs} --steps {config.steps} make {num_images} images, more than "
                        f"the {MAX_FIGURE_IMAGES} one figure draws (each is a matplotlib Axes of its own)")
    import jax

    from jaxgan.classifier.restore import WRITER_HINT, load_classify_fn
    from jaxgan.configs.classifier import KIND as CLASSIFIER
    from jaxgan.gan import interpolate
    from jaxgan.gan.generate import check_finite_images, restore_generator
    from jaxgan.plotting.interpolation import rows_writer
    from jaxgan.runtime import checkpoint, files, workdir

    if args.classifier_dir is not None:  # before minutes of GAN work, not after
        checkpoint.check_kind(workdir.checkpoints_of(args.classifier_dir), CLASSIFIER, label="classifier",
                              flag="--classifier-dir", hint=WRITER_HINT)
    print(_cli.describe_devices())
    gen_variables, gan_config = restore_generator(args.gan_dir, args.step, weights=args.weights)
    if args.classifier_dir is None:
        classify_fn = None
        print("no --classifier-dir: drawing random pairs as the study did; their classes are unchecked")
    else:
        classify_fn = load_classify_fn(args.classifier_dir)
    pair_key = jax.random.PRNGKey(config.seed)
    rows = interpolate.interpolation_rows(gen_variables, pair_key, num_pairs=config.pairs,
                                          num_between=config.steps, mode=config.mode, classify_fn=classify_fn,
                                          threshold=config.threshold)
    step = gan_config["checkpoint_step"]
    drawer = f"the generator ({gan_config['weights']} weights) at step {step} in {args.gan_dir}"
    check_finite_images(rows["images"].reshape(-1, 28, 28), drawer)  # before either file is written
    classifier_dir = os.path.abspath(args.classifier_dir) if args.classifier_dir else None
    weights = gan_config["weights"]
    record = interpolate.rows_json(rows, checkpoint_dir=os.path.abspath(args.gan_dir),
                                     checkpoint_step=step, weights=weights, seed=config.seed,
                                     classifier_dir=classifier_dir)
    text = json.dumps(record)
    checked = "classifier-checked" if rows["checked"] else "random"
    title = f"{config.mode} interpolation, {checked} pairs, generator ({weights} weights) at step {step}"
    for path in (args.out, json_path):
        files.make_dir(os.path.dirname(os.path.abspath(path)))
    files.write_all({args.out: (rows_writer(rows["images"], rows["probs"], title=title), True),
                     json_path: (lambda f: f.write(text), False)})
    if rows["probs"] is not None:
        ends = rows["probs"][:, [0, -1]]
        for i, (a, b) in enumerate(ends):
            print(f"row {i}: {a.argmax()} ({a.max():.2f}) -> {b.argmax()} ({b.max():.2f})")
    print(f"wrote {args.out} and {json_path}: {config.pairs} rows of {config.steps + 2} images "
          f"from {args.gan_dir} (step {step}, {weights} weights)")


if __name__ == "__main__":
    _cli.run(main)

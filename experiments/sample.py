"""Draws images from a trained GAN generator, as float32 [n, 28, 28] in [-1, 1], for scoring elsewhere.

    python -m experiments.sample --gan-dir runs/gan --n 2000 --seed 0 --out samples.npy

The generator runs in eval mode (BatchNorm uses its running averages), so an image depends
only on its own noise vector. --weights picks the EMA of the generator's weights (the default
when the checkpoint keeps one) or the raw weights. --png also writes a 10x10 picture of the
first 100 images.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from experiments import _cli
from jaxgan.errors import UserError

MAX_IMAGES = 1_000_000
MAX_IMAGES_NOTE = "the images are drawn and written whole, float32 [n, 28, 28], 3.1 GB at the maximum"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags."""
    parser = _cli.parser("sample", __doc__)
    _cli.add_generator_flags(parser)
    parser.add_argument("--n", type=_cli.int_between(1, MAX_IMAGES, MAX_IMAGES_NOTE), default=2000,
                        help="how many images to draw (default: %(default)s)")
    parser.add_argument("--seed", type=_cli.seed, default=0,
                        help="seed of the noise (default: %(default)s)")
    parser.add_argument("--out", default="samples.npy",
                        help="the .npy file to write, float32 [n, 28, 28] in [-1, 1] "
                             "(default: %(default)s)")
    parser.add_argument("--png", default=None,
                        help="also write a 10x10 grid of the first 100 images to this PNG (both files are "
                             "written at the end, or neither)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Restores the generator, draws the images, writes the samples and the grid: both or neither."""
    args = parse_args(argv)
    if not args.out.endswith(".npy"):
        raise UserError(f"--out must name a .npy file, not {args.out}")
    if args.png is not None and not args.png.endswith(".png"):
        raise UserError(f"--png must name a .png file, not {args.png}")
    _cli.output_files([("--out", args.out)] + ([("--png", args.png)] if args.png else []))
    import jax
    import numpy as np

    from jaxgan.gan.generate import check_finite_images, restore_generator, sample
    from jaxgan.plotting.gan import grid_writer
    from jaxgan.runtime import files

    print(_cli.describe_devices())
    gen_variables, config = restore_generator(args.gan_dir, args.step, weights=args.weights)
    noise_key = jax.random.PRNGKey(args.seed)
    images = np.asarray(jax.device_get(sample(gen_variables, noise_key, args.n)), np.float32)
    check_finite_images(images, f"the generator ({config['weights']} weights) at step "
                                f"{config['checkpoint_step']} in {args.gan_dir}")
    writes = {args.out: (lambda f: np.save(f, images), True)}
    if args.png:
        writes[args.png] = (grid_writer(images[:100], nrow=10), True)
    for path in writes:
        files.make_dir(os.path.dirname(os.path.abspath(path)))
    files.write_all(writes)
    print(f"wrote {args.out}: float32 {list(images.shape)} in [{images.min():.3f}, {images.max():.3f}] "
          f"from {args.gan_dir} (step {config['checkpoint_step']}, {config['weights']} weights)")
    if args.png:
        print(f"wrote {args.png}: the first {min(100, len(images))} images")


if __name__ == "__main__":
    _cli.run(main)

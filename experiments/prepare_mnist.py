"""Prepares MNIST once for the ``mnist`` source: download and convert to tfds array_record files.

    pip install -e '.[mnist]'
    python -m experiments.prepare_mnist [--data-dir DIR]

Needs TensorFlow and network this once; reading MNIST afterwards needs neither. Without
network it says so within seconds (a TCP connection to the host tfds downloads from, or to
the proxy in HTTPS_PROXY) instead of letting tfds retry for minutes; a download or
preparation that fails removes what it wrote in the data directory, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from experiments import _cli


def main(argv: Sequence[str] | None = None) -> None:
    """Parses the flags and prepares MNIST in tfds's data directory."""
    parser = _cli.parser("prepare_mnist", __doc__, compiles=False)  # it converts files only
    parser.add_argument("--data-dir", default=None,
                        help="tfds data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    args = parser.parse_args(argv)
    from jaxgan.data.images import prepare_mnist

    where = prepare_mnist(args.data_dir)
    print(f"MNIST is prepared in {where}; read it with --dataset mnist"
          + ("" if args.data_dir is None else f" --data-dir {args.data_dir}"))


if __name__ == "__main__":
    _cli.run(main)

"""Measures jaxgan's speed against the device's own matmul peak; writes benchmark.json.

    python -m experiments.benchmark                 # about 10 minutes on a 2-core CPU
    python -m experiments.benchmark --quick         # seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from experiments import _cli


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, runs every measurement, prints the table and writes benchmark.json."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/benchmark/benchmark.json",
                        help="where the JSON results go (default: %(default)s)")
    parser.add_argument("--repeats", type=_cli.positive_int, default=None,
                        help="timed calls per figure, after one warm-up; the median is reported (default: 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args(argv)
    import dataclasses

    from jaxgan import benchmark

    config = benchmark.BenchmarkConfig.quick() if args.quick else benchmark.BenchmarkConfig()
    if args.repeats is not None:
        config = dataclasses.replace(config, repeats=args.repeats)
    _cli.writable_dir(os.path.dirname(os.path.abspath(args.out)))
    print(_cli.describe_devices())
    result = benchmark.run(config, log=lambda line: print(f"  measuring {line}", flush=True))
    text = benchmark.table(result)
    print(text)
    tmp = f"{args.out}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result | {"table": text}, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    _cli.run(main)

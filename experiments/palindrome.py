"""Part 1: LSTM vs vanilla RNN on palindromes, every length and seed of a model in one jitted program.

    python -m experiments.palindrome                      # the study's settings (about 25 min on 2 CPU cores)
    python -m experiments.palindrome --lengths 5 15 --seeds 1 --epochs 60
    python -m experiments.palindrome --lengths 5:60:5      # where does each model stop learning?

The run is one folder, --workdir (default runs/palindrome): config.json, results.json,
summary.md (also printed), the figures and the checkpoints of every chunk of epochs. The same
command resumes a killed run from its newest good checkpoint and ends exactly as an unbroken
run; --epochs is the total, so a finished study continues to a larger one. A folder that holds
another run is refused (--restart moves it aside); one run at a time per folder; SIGINT or
SIGTERM stops at the end of the current chunk, with a checkpoint there, and exits 130 or 143.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from experiments import _cli
from jaxgan.configs.palindrome import PalindromeConfig


def parse_args(argv: Sequence[str] | None):
    """The flags: the study's settings (``PalindromeConfig``) and its folder."""
    p = _cli.parser("palindrome", __doc__)
    _cli.add_config_flags(p, PalindromeConfig)
    _cli.add_run_flags(p, "palindrome", "config.json, results.json, summary.md, the figures")
    _cli.add_distributed_flags(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, trains every sweep in the run folder, writes results and prints the summary."""
    from jaxgan.palindrome import summary, train

    args = parse_args(argv)
    config = _cli.config_from_args(PalindromeConfig, args)
    config.validate()
    _cli.initialize_distributed(args)  # before anything else touches JAX's devices
    train.check_workdir(config, args.workdir, checkpoint_dir=args.checkpoint_dir, restart=args.restart)
    print(_cli.describe_devices())
    start = time.perf_counter()
    with _cli.progress_bars() as progress:
        results = train.train_and_evaluate(config, args.workdir, checkpoint_dir=args.checkpoint_dir,
                                           restart=args.restart, progress=progress)
    seconds = round(time.perf_counter() - start, 1)  # this process's only, not a resumed run's earlier ones
    print()
    print(summary.summary_markdown(results))
    print(summary.finding(results))
    wrote = (f"wrote {len(results['written'])} files to {args.workdir}" if results["written"]
             else "process 0 writes the results")  # a multi-process run's other processes
    print(f"trained in {seconds} s; {wrote}, checkpoints in {results['checkpoint_dir']}")


if __name__ == "__main__":
    _cli.run(main)

"""Part 1: LSTM vs vanilla RNN on palindromes, every length and seed of a model in one jitted program.

    python -m experiments.palindrome                      # the study's settings (about 25 min on 2 CPU cores)
    python -m experiments.palindrome --lengths 5 15 --seeds 1 --epochs 60
    python -m experiments.palindrome --lengths 5:60:5      # where does each model stop learning?

Writes results.json, summary.md (also printed) and figures to --workdir. Every chunk of
epochs is checkpointed; the same command resumes a killed run from its newest good checkpoint
and ends exactly as an unbroken run; --epochs is the total, so a finished study continues to a
larger one. One run at a time per checkpoint directory; SIGINT or SIGTERM stops at the end of
the current chunk, with a checkpoint there, and exits 130 or 143.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from experiments import _cli
from jaxgan.configs.palindrome import PalindromeConfig


def parse_args(argv: Sequence[str] | None):
    """The flags: the study's settings (``PalindromeConfig``) and where outputs go."""
    p = _cli.parser("palindrome", __doc__)
    _cli.add_config_flags(p, PalindromeConfig)
    p.add_argument("--workdir", default="runs/palindrome",
                   help="where results.json, summary.md and figures go (default: runs/palindrome)")
    p.add_argument("--checkpoint-dir", default="checkpoints/palindrome",
                   help="root of the Orbax checkpoints, one folder per model and encoding, written "
                        "after every chunk; a run of the same settings resumes from them "
                        "(default: checkpoints/palindrome)")
    p.add_argument("--restart", action="store_true",
                   help="when a sweep's checkpoints are all damaged, train it from scratch instead of "
                        "stopping (the damaged ones are moved to its damaged/ folder, never deleted)")
    _cli.add_distributed_flags(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, trains every sweep, writes results and prints the summary."""
    from tqdm import tqdm

    from jaxgan.palindrome import summary, train

    args = parse_args(argv)
    config = _cli.config_from_args(PalindromeConfig, args)
    config.validate()
    _cli.initialize_distributed(args)  # before anything else touches JAX's devices
    train.check_checkpoint_root(args.checkpoint_dir)  # before anything is created
    _cli.writable_dir(args.workdir)
    _cli.writable_dir(args.checkpoint_dir)
    print(_cli.describe_devices())
    bars = []

    def progress(label, epochs):
        """A bar per sweep; a resumed sweep's first call moves it to the resumed epoch."""
        bar = tqdm(total=epochs, desc=label, unit="epoch", dynamic_ncols=True)
        bars.append(bar)

        def on_chunk(done, metrics):
            bar.update(done - bar.n)
            if done:
                bar.set_postfix(val_acc=f"{metrics['val_acc'][:, -1].mean():.3f}")
            if done == epochs:
                bar.close()
        return on_chunk

    start = time.perf_counter()
    try:
        results = train.train(config, args.checkpoint_dir, progress=progress, log=tqdm.write,
                              restart=args.restart)
    finally:
        for bar in bars:
            bar.close()
    # The wall time of this process only; a resumed run's earlier processes are not counted.
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    paths = summary.write_results(results, args.workdir)
    print()
    print(summary.summary_markdown(results))
    print(summary.finding(results))
    wrote = (f"wrote {len(paths)} files to {args.workdir}" if paths
             else "process 0 writes the results")  # a multi-process run's other processes
    print(f"trained in {results['wall_time_s']} s; {wrote}, checkpoints to {args.checkpoint_dir}")


if __name__ == "__main__":
    _cli.run(main)

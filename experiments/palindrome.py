"""Part 1: LSTM vs vanilla RNN on palindromes, every length and seed of a model in one jitted program.

    python -m experiments.palindrome                       # the study's defaults
    python -m experiments.palindrome --encoding both --lengths 5 20 --seeds 2 --epochs 50

Reliability: every chunk of epochs is checkpointed; the same command resumes a killed run from
its newest good checkpoint and ends exactly as an unbroken run; one run at a time per
checkpoint directory; SIGINT or SIGTERM stops at the end of the current chunk, with a
checkpoint there, and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from experiments import _cli
from jaxgan.data.palindrome import ENCODINGS, MAX_INPUT_LENGTH
from jaxgan.models.recurrent import CELLS, INITS
from jaxgan.train.palindrome import STRATEGIES, PalindromeConfig


def parse_args(argv):
    """The flags; each one's help says what it sets."""
    p = argparse.ArgumentParser(prog="python -m experiments.palindrome", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["rnn", "lstm"], choices=sorted(CELLS),
                   help="models to train (default: rnn lstm)")
    p.add_argument("--lengths", nargs="+", type=_cli.lengths, default=[[5, 10, 15, 20]], metavar="T",
                   help=f"input lengths T, digits read before predicting the last one "
                        f"(1..{MAX_INPUT_LENGTH}); a range START:STOP:STEP includes STOP, so 5:60:5 is "
                        f"5 10 ... 60 (default: 5 10 15 20)")
    p.add_argument("--seeds", type=int, default=3,
                   help="number of seeds per length; seeds are 0..N-1 (default: 3)")
    p.add_argument("--epochs", type=int, default=100, help="training epochs (default: 100)")
    p.add_argument("--encoding", default="scalar", choices=[*ENCODINGS, "both"],
                   help="how a digit enters the network: scalar = one float (input size 1, the "
                        "course template's), onehot = 10 inputs, both = run each (default: scalar)")
    p.add_argument("--init", default="study", choices=INITS,
                   help="initialisation: study = every weight and both biases of each gate (x-side and "
                        "h-side) from U(±1/sqrt(fan_in)), as the study's nn.Linear layers; flax = "
                        "LeCun-normal "
                        "input, orthogonal recurrent weights and one zero bias per gate (default: study)")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=False,
                   help="reshuffle the training batches every epoch from the run's key; --no-shuffle "
                        "keeps one fixed order, as the study's loader did (default: --no-shuffle)")
    p.add_argument("--hidden", type=_cli.positive_int, default=128, help="hidden units (default: 128)")
    p.add_argument("--num-examples", type=_cli.positive_int, default=2048,
                   help="palindromes per run, split 80/20 into train/validation (default: 2048)")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128, help="batch size (default: 128)")
    p.add_argument("--lr", type=_cli.positive_float, default=1e-3,
                   help="RMSprop learning rate (PyTorch semantics; default: 1e-3)")
    p.add_argument("--clip-norm", type=_cli.positive_float, default=10.0,
                   help="global gradient-norm clipping threshold (default: 10)")
    p.add_argument("--unroll", type=_cli.positive_int, default=1,
                   help="time steps unrolled per scan iteration; a speed knob only (default: 1)")
    p.add_argument("--sweep-strategy", default="auto", choices=STRATEGIES,
                   help="how one program runs all (length, seed) pairs: vmap batches them at the "
                        "longest length (best on GPU/TPU), map runs them in turn, grouped by length "
                        "so each scans only its own steps (faster on CPU); auto picks by backend "
                        "(default: auto); results are the same to float rounding")
    p.add_argument("--chunk-epochs", type=_cli.positive_int, default=10,
                   help="epochs run on the device between progress updates (default: 10)")
    p.add_argument("--workdir", default="runs/palindrome",
                   help="where results.json, summary.md and figures go (default: runs/palindrome)")
    p.add_argument("--checkpoint-dir", default="checkpoints/palindrome",
                   help="root of the Orbax checkpoints, one folder per model and encoding, written "
                        "after every chunk; a run of the same settings resumes from them "
                        "(default: checkpoints/palindrome)")
    p.add_argument("--keep-checkpoints", type=_cli.positive_int, default=2,
                   help="how many of the newest checkpoints to keep per sweep (default: 2)")
    p.add_argument("--restart", action="store_true",
                   help="when a sweep's checkpoints are all damaged, train it from scratch instead of "
                        "stopping (the damaged ones are moved to its damaged/ folder, never deleted)")
    _cli.add_distributed_flags(p)
    return p.parse_args(argv)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Shows a warning as one ``warning: ...`` line on stderr, without the source location."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> None:
    """Parses flags, trains every sweep, writes results and prints the summary."""
    from tqdm import tqdm

    from jaxgan import palindrome_study as study
    from jaxgan.signals import Interrupted

    args = parse_args(argv)
    _cli.initialize_distributed(args)  # before anything else touches JAX's devices
    encodings = list(ENCODINGS) if args.encoding == "both" else [args.encoding]
    lengths = [t for group in args.lengths for t in group]
    base = PalindromeConfig(init=args.init, shuffle=args.shuffle, hidden=args.hidden,
                            num_examples=args.num_examples,
                            batch_size=args.batch_size, learning_rate=args.lr,
                            clip_norm=args.clip_norm, unroll=args.unroll)
    study.validate(args.models, encodings, lengths, args.seeds, args.epochs, base)
    study.check_checkpoint_root(args.checkpoint_dir)  # before anything is created
    _cli.writable_dir(args.workdir)
    _cli.writable_dir(args.checkpoint_dir)
    warnings.showwarning = _print_warning  # a damaged checkpoint is news, not a stack location
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
        results = study.run_study(base, args.models, encodings, lengths, list(range(args.seeds)),
                                  args.epochs, args.checkpoint_dir, chunk_epochs=args.chunk_epochs,
                                  strategy=args.sweep_strategy, progress=progress, log=tqdm.write,
                                  restart=args.restart, keep_checkpoints=args.keep_checkpoints)
    except Interrupted as stop:
        for bar in bars:
            bar.close()
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
    finally:
        for bar in bars:
            bar.close()
    # The wall time of this process only; a resumed run's earlier processes are not counted.
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    paths = study.write_results(results, args.workdir)
    print()
    print(study.summary_markdown(results))
    wrote = (f"wrote {len(paths)} files to {args.workdir}" if paths
             else "process 0 writes the results")  # a multi-process run's other processes
    print(f"trained in {results['wall_time_s']} s; {wrote}, checkpoints to {args.checkpoint_dir}")


if __name__ == "__main__":
    _cli.run(main)

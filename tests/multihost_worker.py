"""One process of tests/test_multihost.py: a small sweep over every process's devices, then a checkpoint.

    python tests/multihost_worker.py OUT --coordinator-address HOST:PORT --num-processes 2 --process-id I
    python tests/multihost_worker.py OUT          # the one-process reference

(with the repository root on PYTHONPATH).

The distributed flags are the experiment scripts' own (``experiments._cli``). Each process
writes ``OUT/process{I}.json`` (metrics, where its runs lived); together they save the final
state to ``OUT/checkpoint`` with ``jaxgan.runtime.checkpoint``, and process 0 writes its leaves to
``OUT/distributed.npz``. The reference writes ``OUT/single.json``
and its final state's leaves to ``OUT/single.npz``.

Then each runs the study's own trainer (``jaxgan.palindrome.train``) with checkpoints in
``OUT/study-{distributed,single}``; in the distributed run only process 1 sends itself SIGTERM
after the first chunk, and every process must stop there together, saved; a second call resumes
and finishes, and process 0 writes the result files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from experiments import _cli

CHECKPOINT_KIND = "multihost-test-sweep"
LENGTHS, SEEDS, EPOCHS = (3, 6), (0, 1, 2), 2  # 6 runs over 4 devices: padded to 8, 4 per process


def main(argv: list[str]) -> None:
    """Parses the flags, initialises JAX's processes, sweeps, and writes the results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    _cli.add_distributed_flags(parser)
    args = parser.parse_args(argv)
    distributed = _cli.initialize_distributed(args)

    import dataclasses
    import signal

    import jax
    import numpy as np

    from jaxgan.configs.palindrome import PalindromeConfig
    from jaxgan.palindrome import steps, summary, sweep
    from jaxgan.palindrome import train as study
    from jaxgan.runtime import checkpoint, parallel
    from jaxgan.runtime.signals import Interrupted

    config = steps.run_config("rnn", max_length=6, hidden=8, num_examples=64, batch_size=16)
    runs, metrics = sweep.sweep(config, LENGTHS, SEEDS, EPOCHS, chunk_epochs=1)
    report = {"process": jax.process_index(), "processes": jax.process_count(),
              "devices": jax.device_count(), "local_devices": jax.local_device_count(),
              "metrics": {name: value.tolist() for name, value in metrics.items()}}
    os.makedirs(args.out, exist_ok=True)
    # The study's own path (the same sweep program, from jit's cache), to its result files; in the
    # distributed run process 1 alone is signalled after the first chunk.
    settings = dataclasses.replace(PalindromeConfig(), models=("rnn",), lengths=LENGTHS, num_seeds=len(SEEDS),
                                   epochs=EPOCHS, hidden=8, num_examples=64, batch_size=16, chunk_epochs=1)
    study_dir = os.path.join(args.out, "study-distributed" if distributed else "study-single")
    real_chunks = study.sweep_chunks

    def signalled_chunks(*chunk_args, **chunk_kwargs):
        """The real chunks; process 1 of a distributed run sends itself SIGTERM after the first."""
        for done, trained, chunk in real_chunks(*chunk_args, **chunk_kwargs):
            if distributed and jax.process_index() == 1 and done == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            yield done, trained, chunk

    study.sweep_chunks = signalled_chunks
    try:
        study.train(settings, study_dir)
        report["stopped"] = None
    except Interrupted as stop:
        report["stopped"] = {"signum": stop.signum, "message": str(stop)}
    study.sweep_chunks = real_chunks
    results = study.train(settings, study_dir)  # resumes where the interrupted call saved
    report["study_metrics"] = {name: [run[name] for run in results["runs"]] for name in steps.METRICS}
    written = summary.write_results(results, os.path.join(args.out, "results"))
    report["results_written"] = sorted(os.path.basename(path) for path in written)
    leaves = [np.asarray(x) for x in jax.tree.leaves(parallel.fetch(runs))]  # every process takes part
    if not distributed:
        np.savez(os.path.join(args.out, "single.npz"), *leaves)
        with open(os.path.join(args.out, "single.json"), "w") as f:
            json.dump(report, f)
        return
    # Which runs this process's devices hold when the sweep places them (the init is compiled already).
    seeds = np.asarray([s for _ in LENGTHS for s in SEEDS], np.int32)
    lengths = np.asarray(sweep.run_lengths(LENGTHS, SEEDS), np.int32)
    placed, *_ = sweep.arrange_sweep(*sweep.init_sweep(seeds, lengths, config), config, lengths.tolist(),
                                     "auto", sweep.sweep_mesh())
    key = placed.key  # [runs, 2]
    report["local_runs"] = sorted(i for shard in key.addressable_shards
                                  for i in range(*shard.index[0].indices(key.shape[0])))
    report["global_runs"] = int(key.shape[0])
    manager = checkpoint.open_manager(os.path.join(args.out, "checkpoint"))
    checkpoint.save(manager, EPOCHS, runs, {"kind": CHECKPOINT_KIND, "lengths": list(LENGTHS),
                                            "seeds": list(SEEDS)})
    manager.wait_until_finished()
    manager.close()
    if jax.process_index() == 0:
        np.savez(os.path.join(args.out, "distributed.npz"), *leaves)
    with open(os.path.join(args.out, f"process{jax.process_index()}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1:])

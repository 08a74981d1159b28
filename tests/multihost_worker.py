"""One process of tests/test_multihost.py: a small sweep over every process's devices, then a checkpoint.

    python tests/multihost_worker.py OUT --coordinator-address HOST:PORT --num-processes 2 --process-id I
    python tests/multihost_worker.py OUT          # the one-process reference

(with the repository root on PYTHONPATH).

The distributed flags are the experiment scripts' own (``experiments._cli``). Each process
writes ``OUT/process{I}.json`` (metrics, where its runs lived); together they save the final
state to ``OUT/checkpoint`` with ``jaxgan.checkpoint``, and process 0 writes its leaves to
``OUT/distributed.npz``. The reference writes ``OUT/single.json``
and its final state's leaves to ``OUT/single.npz``.
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

    import jax
    import numpy as np

    from jaxgan import checkpoint, parallel
    from jaxgan import palindrome_study as study
    from jaxgan.train import palindrome as pal

    config = pal.PalindromeConfig(model="rnn", hidden=8, num_examples=64, batch_size=16, max_length=6)
    runs, metrics = pal.sweep(config, LENGTHS, SEEDS, EPOCHS, chunk_epochs=1)
    report = {"process": jax.process_index(), "processes": jax.process_count(),
              "devices": jax.device_count(), "local_devices": jax.local_device_count(),
              "metrics": {name: value.tolist() for name, value in metrics.items()}}
    os.makedirs(args.out, exist_ok=True)
    # The study's own path (the same sweep program, from jit's cache), to its result files.
    results = study.run_study(config, ["rnn"], ["scalar"], list(LENGTHS), list(SEEDS), EPOCHS, None,
                              chunk_epochs=1)
    written = study.write_results(results, os.path.join(args.out, "results"))
    report["results_written"] = sorted(os.path.basename(path) for path in written)
    leaves = [np.asarray(x) for x in jax.tree.leaves(parallel.fetch(runs))]  # every process takes part
    if not distributed:
        np.savez(os.path.join(args.out, "single.npz"), *leaves)
        with open(os.path.join(args.out, "single.json"), "w") as f:
            json.dump(report, f)
        return
    # Which runs this process's devices hold when the sweep places them (the init is compiled already).
    seeds = np.asarray([s for _ in LENGTHS for s in SEEDS], np.int32)
    lengths = np.asarray(pal.run_lengths(LENGTHS, SEEDS), np.int32)
    placed, *_ = pal.arrange_sweep(*pal.init_sweep(seeds, lengths, config), config, lengths.tolist(),
                                   "auto", pal.sweep_mesh())
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

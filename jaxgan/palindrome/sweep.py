"""Part 1, many runs in one program: every (length, seed) of a sweep laid out over the devices.

``sweep_chunks`` trains stacked runs chunk after chunk (one jitted ``train_sweep_chunk`` each);
``RunLayout`` says where each run sits: with ``map`` runs are grouped by length so each group
scans only its own steps, with ``vmap`` they are batched at the longest length, and with
several devices each device trains its own block of runs (``shard_map``, no communication).
``sweep`` is the whole thing in one call.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jaxgan.palindrome.steps import METRICS, RunConfig, RunData, RunState, init_run, run_epochs, run_key
from jaxgan.runtime import parallel
from jaxgan.runtime.parallel import resolve_strategy


def _over_runs(fn: Callable, mesh: Mesh | None) -> Callable:
    """``fn`` (leading run axis in, leading run axis out) as is, or run per device with ``mesh``.

    Runs never talk to each other, so each device applies ``fn`` to its own block of runs
    (``shard_map``): no collectives, and each device's program is the one-device program on
    fewer runs. Every input and output leaf must have the run axis first.
    """
    if not parallel.is_parallel(mesh):
        return fn
    spec = PartitionSpec(parallel.AXIS)
    # check_vma=False: with no collectives there is nothing to check, and the checker would
    # ask every constant carry in the model's scans (h(0) = 0) to be marked device-varying.
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)


@functools.partial(jax.jit, static_argnames=("config",))
def init_sweep(seeds: jax.Array, lengths: jax.Array, config: RunConfig):
    """Runs for every (seed [R], length [R]) pair, stacked on a leading axis R."""
    return jax.vmap(lambda s, t: init_run(run_key(s, t), t, config))(seeds, lengths)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Where each run of a sweep sits in its program, and how many time steps each slot scans.

    The program holds ``devices * len(slot_lengths)`` positions; device d trains positions
    ``[d * slots, (d + 1) * slots)``, slot after slot. ``order[p]`` is the run at position p (a
    run may appear twice: the extra copy fills the last slot and is dropped), and every device
    scans slot j over the last ``slot_lengths[j]`` steps of its runs' left-padded sequences.
    """

    order: tuple[int, ...]
    slot_lengths: tuple[int, ...]

    def positions(self, count: int) -> np.ndarray:
        """For each of the ``count`` runs, the position that holds it (its first, kept copy) [count]."""
        return np.asarray([self.order.index(r) for r in range(count)])


def run_layout(lengths: Sequence[int], devices: int, max_length: int, by_length: bool) -> RunLayout:
    """Places runs of these input ``lengths`` on ``devices``; ``by_length`` scans each slot only as
    far as its longest run.

    By length, runs are ranked longest first and dealt ``devices`` to a slot, so the runs that
    share a slot (one per device, all scanning its length) are as alike as they can be: lengths
    5, 10, 15, 20 on one device scan 50 steps instead of 80; on two, 20 + 10 per device.
    Otherwise runs keep their order and every slot scans ``max_length`` steps (a vmapped sweep
    batches all its runs into one scan).
    """
    count = len(lengths)
    ranked = sorted(range(count), key=lambda r: -lengths[r]) if by_length else list(range(count))
    slots = -(-count // devices)
    ranked += [ranked[-1]] * (slots * devices - count)  # the shortest run fills the last slot
    slot_lengths = tuple(lengths[ranked[j * devices]] if by_length else max_length for j in range(slots))
    if not by_length:  # device d holds a contiguous block of runs
        return RunLayout(order=tuple(ranked), slot_lengths=slot_lengths)
    # Slot j of device d is ranked position j * devices + d; the program's position is d * slots + j.
    order = tuple(ranked[j * devices + d] for d in range(devices) for j in range(slots))
    return RunLayout(order=order, slot_lengths=slot_lengths)


def _last_steps(data: RunData, steps: int) -> RunData:
    """``data`` [runs, N, L, ...] cut to its last ``steps`` time steps (all that a run of at most
    ``steps`` digits uses, since sequences are left-padded)."""
    cut = lambda x: x[:, :, x.shape[2] - steps:]
    return data.replace(train_inputs=cut(data.train_inputs), train_mask=cut(data.train_mask),
                        val_inputs=cut(data.val_inputs), val_mask=cut(data.val_mask))


def _slot_groups(slot_lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """Runs of consecutive equal slot lengths as (first slot, end slot, length)."""
    groups = []
    for j, steps in enumerate(slot_lengths):
        if groups and groups[-1][2] == steps:
            groups[-1] = (groups[-1][0], j + 1, steps)
        else:
            groups.append((j, j + 1, steps))
    return groups


@functools.partial(jax.jit, static_argnames=("config", "num_epochs", "strategy", "mesh", "slot_lengths"),
                   donate_argnums=0)
def train_sweep_chunk(runs: RunState, data: RunData, config: RunConfig, num_epochs: int,
                      strategy: str = "vmap", mesh: Mesh | None = None,
                      slot_lengths: tuple[int, ...] | None = None):
    """``num_epochs`` epochs of every run in one program, over the leading run axis.

    ``vmap`` batches the runs' products together (what an accelerator wants); ``map`` runs them
    one after another inside the same program, which on a CPU keeps each run's weights in cache
    and is faster (``experiments.benchmark`` measures both; the README gives the figures).
    With a ``mesh`` of several devices the run axis (a multiple of its size) is split over it
    and each device trains its own runs with that strategy. ``slot_lengths`` (one per run of a
    device, see ``RunLayout``) lets each group of equal slots scan only its own last steps.
    """
    one = lambda r, d: run_epochs(r, d, config, num_epochs)

    def together(runs, data):
        """Runs of one scan length, batched or in turn."""
        if strategy == "map":
            return jax.lax.map(lambda pair: one(*pair), (runs, data))
        return jax.vmap(one)(runs, data)

    def all_runs(runs, data):
        """Every run of this device (or of the only device), group after group."""
        if slot_lengths is None:
            return together(runs, data)
        parts = []
        for first, end, steps in _slot_groups(slot_lengths):
            block = lambda x, first=first, end=end: x[first:end]
            parts.append(together(jax.tree.map(block, runs), _last_steps(jax.tree.map(block, data), steps)))
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts) if len(parts) > 1 else parts[0]

    return _over_runs(all_runs, mesh)(runs, data)


def sweep_mesh(mesh: Mesh | None = None) -> Mesh | None:
    """The mesh a sweep spreads its runs over: ``mesh``, by default every device of every process;
    None when that is a single device (the plain path)."""
    mesh = parallel.make_mesh() if mesh is None else mesh
    return mesh if parallel.is_parallel(mesh) else None


def arrange_runs(tree, layout: RunLayout, mesh: Mesh | None):
    """A stacked tree [R, ...] in ``layout``'s order (copies fill the last slot), placed run-sharded
    over ``mesh`` (or on the default device without one).

    Fill copies are real runs, so they train on real data and stay finite; ``sweep_chunks``
    drops them. Works across processes (every process passes the same tree).
    """
    order = np.asarray(layout.order)
    arranged = jax.tree.map(lambda leaf: leaf[order], parallel.fetch(tree))
    if mesh is None:
        return jax.device_put(arranged)
    return parallel.put(arranged, parallel.runs(mesh))


def chunk_size(epochs: int, target: int) -> int:
    """The largest divisor of ``epochs`` not above ``target``, so every chunk has one shape."""
    return max(d for d in range(1, min(epochs, target) + 1) if epochs % d == 0)


def run_lengths(lengths: Sequence[int], seeds: Sequence[int]) -> list[int]:
    """Each run's input length on the host, length-major: run r has ``lengths[r // len(seeds)]``."""
    return [int(t) for t in lengths for _ in seeds]


def pair_arrays(lengths: Sequence[int], seeds: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """(seeds [R], lengths [R]) of every (length, seed) pair, length-major: run r has
    ``lengths[r // len(seeds)]`` and ``seeds[r % len(seeds)]``."""
    pair_seeds = jnp.asarray([s for _ in lengths for s in seeds], jnp.int32)
    return pair_seeds, jnp.asarray(run_lengths(lengths, seeds), jnp.int32)


def arrange_sweep(runs: RunState, data: RunData, config: RunConfig, lengths: Sequence[int] | None,
                  strategy: str, mesh: Mesh | None) -> tuple[RunState, RunData, RunLayout, dict]:
    """Stacked runs and data laid out for ``train_sweep_chunk``: (runs, data, layout, program options).

    ``lengths`` are the runs' input lengths (None: all ``config.max_length``). The ``map``
    strategy trains runs in turn, so nothing is gained by padding them to one length: runs are
    grouped by length and each group scans its own steps. ``vmap`` batches every run of a
    device into one scan at the longest length. On one device with nothing to group, runs stay
    where they are and the options are empty: the plain program, as without this function.
    """
    count = jax.tree.leaves(runs)[0].shape[0]
    lengths = [config.max_length] * count if lengths is None else [int(t) for t in lengths]
    if len(lengths) != count:
        raise ValueError(f"{len(lengths)} run lengths for {count} runs")
    layout = run_layout(lengths, 1 if mesh is None else mesh.size, config.max_length,
                        by_length=resolve_strategy(strategy) == "map")
    options = {} if mesh is None else {"mesh": mesh}
    if any(steps != config.max_length for steps in layout.slot_lengths):
        options["slot_lengths"] = layout.slot_lengths
    if mesh is not None or layout.order != tuple(range(count)):
        runs, data = arrange_runs((runs, data), layout, mesh)
    return runs, data, layout, options


def sweep_chunks(runs: RunState, data: RunData, config: RunConfig, epochs: int, *, start: int = 0,
                 chunk_epochs: int = 10, strategy: str = "auto", mesh: Mesh | None = None,
                 run_lengths: Sequence[int] | None = None
                 ) -> Iterator[tuple[int, RunState, dict[str, np.ndarray]]]:
    """Trains stacked ``runs`` from epoch ``start`` to ``epochs``, yielding after every chunk.

    Yields ``(epochs_done, runs, chunk_metrics)`` with host metrics ``{name: [runs, chunk]}``.
    Chunks have ``chunk_size(epochs, chunk_epochs)`` epochs counted from 0, so a sweep resumed
    at a chunk boundary runs the same compiled program on the same state and key as an
    unbroken one, and ends bit for bit where it would have (tested). ``runs`` is donated.

    ``run_lengths`` (each run's input length) lets the ``map`` strategy scan each run only over
    its own steps (``arrange_sweep``). With several devices (``sweep_mesh(mesh)``) the runs are
    spread over them, each device training its own; the run count is filled up to a multiple
    of the device count with copies of a run, so any study fits any machine at a cost of at
    most one run per device. Yielded runs and metrics are the real runs in their own order.
    Results equal the one-device sweep (tested).
    """
    chunk = chunk_size(epochs, chunk_epochs)
    strategy = resolve_strategy(strategy)
    if start >= epochs:  # nothing to train (and ``runs`` may be None then)
        return
    count = jax.tree.leaves(runs)[0].shape[0]
    runs, data, layout, options = arrange_sweep(runs, data, config, run_lengths, strategy, sweep_mesh(mesh))
    moved = layout.order != tuple(range(count))
    positions = layout.positions(count) if moved else None
    done = start
    while done < epochs:
        num = min(chunk - done % chunk, epochs - done)  # back onto the chunk grid after an odd start
        runs, metrics = train_sweep_chunk(runs, data, config, num, strategy, **options)
        metrics = parallel.fetch(metrics)  # the one host sync per chunk (all runs, on every process)
        done += num
        if not moved:
            yield done, runs, {name: np.asarray(metrics[name]) for name in METRICS}
            continue
        real = jax.tree.map(lambda x: x[positions], runs)
        yield done, real, {name: np.asarray(metrics[name])[positions] for name in METRICS}


def sweep(config: RunConfig, lengths: Sequence[int], seeds: Sequence[int], epochs: int, *,
          chunk_epochs: int = 10, strategy: str = "auto",
          on_chunk: Callable[[int, dict], None] | None = None,
          mesh: Mesh | None = None) -> tuple[RunState, dict[str, np.ndarray]]:
    """Trains one model on every (length, seed) pair in one jitted program (vmap or map over runs).

    Runs are ordered length-major: run r has ``lengths[r // len(seeds)]`` and
    ``seeds[r % len(seeds)]``. Returns the final stacked RunState and metrics
    ``{name: float array [runs, epochs]}``; ``on_chunk(epochs_done, chunk_metrics)`` is called
    on the host after each chunk. With several devices the runs are spread over ``mesh``
    (default: all of them; see ``sweep_chunks``).
    """
    if max(lengths) > config.max_length:
        raise ValueError(f"length {max(lengths)} exceeds config.max_length={config.max_length}")
    runs, data = init_sweep(*pair_arrays(lengths, seeds), config)
    history: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for done, trained, metrics in sweep_chunks(runs, data, config, epochs, chunk_epochs=chunk_epochs,
                                               strategy=strategy, mesh=mesh,
                                               run_lengths=run_lengths(lengths, seeds)):
        runs = trained
        for name in METRICS:
            history[name].append(np.asarray(metrics[name]))
        if on_chunk is not None:
            on_chunk(done, metrics)
    return runs, {name: np.concatenate(parts, axis=1) for name, parts in history.items()}



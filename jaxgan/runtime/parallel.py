"""Devices: one 1-D mesh over every device of every process, and the three placements this project uses.

The sweep puts its runs along the mesh (``runs``: each device trains its own runs), the GAN
puts its batch along it (``batch``: data parallel, parameters ``replicated``). Both are the
same spec, "leading axis split over the mesh axis"; they keep two names because they mean two
things. With several processes (``jax.distributed.initialize``) the mesh spans all of their
devices, host arrays are placed with ``put`` (each process supplies the shards it holds) and
read back with ``fetch`` (every process gets the whole value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "devices"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``AXIS`` over ``devices`` (default: every device of every process).

    The axis is ``Auto``: code is written on global arrays and XLA inserts the collectives
    (the batch-norm means and gradient sums of the data-parallel GAN).
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def runs(mesh: Mesh) -> NamedSharding:
    """Arrays [runs, ...] with the run axis split over the mesh; the rest of each run on its device."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def batch(mesh: Mesh) -> NamedSharding:
    """Arrays [batch, ...] with the batch axis split over the mesh (data parallel)."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Arrays of any shape held whole on every device of the mesh (parameters, the image set)."""
    return NamedSharding(mesh, PartitionSpec())


def is_parallel(mesh: Mesh | None) -> bool:
    """Whether ``mesh`` spans more than one device (a one-device mesh takes the plain path)."""
    return mesh is not None and mesh.size > 1


def put(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Places every leaf of ``tree`` (host or device arrays, the same on every process) with ``sharding``.

    Each process copies only the shards its own devices hold, so this works across hosts,
    where ``jax.device_put`` of a whole array onto another host's device cannot. A leaf
    already spread over several processes is gathered first (``fetch``), so with several
    processes every process must call this together.
    """

    def one(host):
        """One leaf: the shards this process holds, cut from its whole value."""
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, fetch(tree))


def fetch(tree: Any) -> Any:
    """Every leaf of ``tree`` as a numpy array holding the whole (global) value, on every process.

    With several processes, a leaf spread over other processes' devices is gathered: every
    process must then call this together, as it calls the program that made the leaf.
    """
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))

    def one(leaf):
        """One leaf: read here when this process holds all of it, else gathered from all processes."""
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable or leaf.is_fully_replicated:
            return np.asarray(jax.device_get(leaf))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree.map(one, tree)


# How one program runs many independent runs (Part 1's sweep, many GANs): batched, or in turn.
STRATEGIES = ("auto", "vmap", "map")


def resolve_strategy(strategy: str) -> str:
    """``auto`` is ``map`` (runs in turn, each run's weights staying in cache) on CPU and ``vmap`` (runs
    batched into one product) on accelerators; measured in ``benchmarks/``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown sweep strategy {strategy!r}; choose from {STRATEGIES}")
    if strategy == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return strategy


def is_writer() -> bool:
    """Whether this process writes a run's result files: process 0 (the only one without
    ``jax.distributed``). Every process holds the same results; one copy on disk is enough,
    and several processes writing one shared folder would race."""
    return jax.process_index() == 0


def restore_target(abstract: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
    """``abstract`` (shapes and dtypes, e.g. from ``jax.eval_shape``) with a sharding on every leaf.

    Orbax restores an array where its target's sharding says; without one it reuses the
    devices the checkpoint was written from and fails when they are not here (a checkpoint
    of several devices or processes restored in one). Default: this process's first device
    when it is alone, else replicated over every device of every process.
    """
    if sharding is None:
        sharding = (jax.sharding.SingleDeviceSharding(jax.local_devices()[0]) if jax.process_count() == 1
                    else replicated(make_mesh()))
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
                        abstract)

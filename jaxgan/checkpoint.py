"""One Orbax CheckpointManager wrapper: open, save, latest step, restore into an abstract target.

Every checkpoint holds two items: ``state`` (any pytree of arrays) and ``config`` (JSON).
The config's ``kind`` names what wrote it, so restoring another experiment's checkpoint
fails with one sentence instead of a tree-mismatch traceback.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan.errors import UserError

_ITEMS = ("state", "config")


def open_manager(directory: str | os.PathLike, *, max_to_keep: int | None = 3,
                 create: bool = True) -> ocp.CheckpointManager:
    """Opens (and with ``create`` makes) the checkpoint directory; one manager per run."""
    directory = os.path.abspath(directory)
    if not create and not os.path.isdir(directory):
        raise UserError(f"no checkpoint directory at {directory}")
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create checkpoint directory {directory}: "
                            f"{err.strerror}") from None
        if not os.access(directory, os.W_OK):
            raise UserError(f"checkpoint directory {directory} is not writable")
    if create:
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    else:  # read-only: Orbax wants no retention policy and no save interval then
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, max_to_keep=None,
                                               save_interval_steps=0)
    return ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)


def save(manager: ocp.CheckpointManager, step: int, state: Any, config: dict) -> None:
    """Saves ``state`` and ``config`` at ``step`` (asynchronously; see ``manager.wait_until_finished``)."""
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                              config=ocp.args.JsonSave(config)))


def latest_step(manager: ocp.CheckpointManager) -> int | None:
    """The newest saved step, or None when the directory holds no checkpoint."""
    return manager.latest_step()


def _resolve_step(manager: ocp.CheckpointManager, step: int | None) -> int:
    steps = sorted(manager.all_steps())
    if not steps:
        raise UserError(f"no checkpoint in {manager.directory}")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise UserError(f"no checkpoint at step {step} in {manager.directory}; "
                        f"saved steps are {', '.join(map(str, steps))}")
    return step


def read_config(manager: ocp.CheckpointManager, step: int | None = None) -> tuple[int, dict]:
    """Returns ``(step, config)`` of the given (default newest) checkpoint."""
    step = _resolve_step(manager, step)
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return step, dict(restored["config"])


def restore(manager: ocp.CheckpointManager, abstract_state: Any, *, kind: str,
            step: int | None = None, must_match: dict | None = None) -> tuple[Any, dict]:
    """Restores ``(state, config)`` into the structure of ``abstract_state`` (from eval_shape).

    ``kind`` and every key of ``must_match`` must equal what the checkpoint's config
    recorded; otherwise one sentence says which setting differs.
    """
    step, config = read_config(manager, step)
    if config.get("kind") != kind:
        raise UserError(f"{manager.directory} holds a {config.get('kind', 'unknown')!r} "
                        f"checkpoint, not a {kind!r} one")
    for key, want in (must_match or {}).items():
        if config.get(key) != want:
            raise UserError(f"the checkpoint in {manager.directory} was written with "
                            f"{key}={config.get(key)!r}, but this run has {key}={want!r}")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target)))
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"the checkpoint at step {step} in {manager.directory} does not fit "
                        f"this model ({type(err).__name__})") from None
    return restored["state"], config

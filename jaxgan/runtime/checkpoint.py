"""One Orbax CheckpointManager wrapper: open, save (and prove it saved), restore, the run lock, damage.

Every checkpoint holds two items: ``state`` (any pytree of arrays) and ``config`` (JSON, the
run's record). The record's ``kind`` names what wrote it, so restoring another experiment's
checkpoint fails with one sentence instead of a tree-mismatch traceback; ``check_kind`` is the
one place that answers "is this the right kind of checkpoint directory".

A run that writes checkpoints holds ``lock(directory)`` (an flock on ``.lock``, with the
holder's pid inside), so a second run on the same directory refuses; the kernel drops the
lock when its holder dies, however it dies. ``restore_latest_good`` resumes from the newest
checkpoint that restores, warning about (and setting aside, never deleting) any newer one
that does not and any temporary directory a killed save left behind; the manager is told
(``reload``) whenever a step is moved, so it neither skips a save of a step it believes
exists nor counts a step that is gone towards ``max_to_keep``. ``save`` raises when Orbax
declines a save, and ``confirm_saved`` after it finished, so no save is ever skipped silently.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan.errors import UserError
from jaxgan.runtime import parallel

_ITEMS = ("state", "config")
LOCK_NAME = ".lock"
DAMAGED_DIR = "damaged"  # not a step name, so Orbax never lists what is set aside there


class CheckpointWarning(UserWarning):
    """A checkpoint (or a save's leftover) that cannot be used and is skipped."""


class NoGoodCheckpoint(UserError):
    """The checkpoint directory holds checkpoints, but none of them can be restored."""


class SaveFailed(UserError):
    """A checkpoint the run asked for was not written; the run stops rather than lose it silently."""


def _step_names(directory: str) -> list[str]:
    """Names of the finished checkpoint steps directly in ``directory`` (Orbax names a step by its number)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted((n for n in names if n.isdigit() and os.path.isdir(os.path.join(directory, n))), key=int)


def nested_checkpoint_dirs(directory: str | os.PathLike) -> list[str]:
    """Sub-directories of ``directory`` that hold checkpoints, when it holds none itself (else [])."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory) or _step_names(directory):
        return []
    return sorted(n for n in os.listdir(directory)
                  if n != DAMAGED_DIR and _step_names(os.path.join(directory, n)))


def kind_at(directory: str | os.PathLike) -> str | None:
    """The ``kind`` of the newest checkpoint directly in ``directory``; None when it holds none.

    A checkpoint whose config cannot be read gives ``"unreadable"``: something is there all the same.
    """
    steps = _step_names(os.fspath(directory))
    if not steps:
        return None
    manager = open_manager(directory, create=False)
    try:
        return str(read_config(manager, int(steps[-1]))[1].get("kind", "unknown"))
    except Exception:  # a torn config: the directory is still somebody's checkpoint directory
        return "unreadable"
    finally:
        manager.close()


def check_kind(directory: str | os.PathLike, kind: str, *, label: str | None = None, flag: str = "",
               hint: str = "", must_exist: bool = True) -> None:
    """Raises one UserError unless ``directory`` is a checkpoint directory of ``kind`` (or, without
    ``must_exist``, one that holds no checkpoint yet).

    ``label`` names the kind in the message (default: ``'kind'``), ``flag`` the option it came from,
    ``hint`` what writes such checkpoints. A folder that holds checkpoint folders instead of
    checkpoints (the palindrome study's root) is named as such.
    """
    where = f"{flag} {directory}" if flag else f"{directory}"
    if not os.path.isdir(directory):
        if must_exist:
            raise UserError(f"no checkpoint directory at {directory}")
        return
    nested = nested_checkpoint_dirs(directory)
    if nested:
        raise UserError(f"{where} holds the checkpoint directories {', '.join(nested)} rather than "
                        f"checkpoints of its own; give one of them, or another directory")
    found = kind_at(directory)
    if found is None:
        if must_exist:
            raise UserError(f"no checkpoint in {directory}{hint and '; ' + hint}")
        return
    if found != kind:
        raise UserError(f"{where} holds a {found!r} checkpoint, not a {label or repr(kind)} one"
                        f"{hint and ' (' + hint + ')'}")


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
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    else:  # read-only: Orbax wants no retention policy and no save interval then
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, max_to_keep=None,
                                               save_interval_steps=0)
        with _without_read_only_warning():
            return ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)
    return ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)


@contextlib.contextmanager
def _absl_dropping(keep: Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """While the block runs, absl's logger (Orbax logs through it) drops the records ``keep`` says False
    to; blocks nest, each adding and removing its own filter."""

    def drop(record: logging.LogRecord) -> bool:
        """This block's own filter (``keep``)."""
        return keep(record)

    logger = logging.getLogger("absl")
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _without_read_only_warning() -> contextlib.AbstractContextManager:
    """Drops the warning Orbax logs for every read-only manager ("Given directory is read only"): reading
    a checkpoint is what the caller asked for, not news."""
    return _absl_dropping(lambda record: not str(record.msg).startswith("Given directory is read only"))


def save(manager: ocp.CheckpointManager, step: int, state: Any, record: dict) -> None:
    """Starts saving ``state`` and ``record`` at ``step`` (asynchronously; ``confirm_saved`` checks it).

    Raises SaveFailed when Orbax declines the save (it does so without a word when it believes
    the step exists already), instead of letting the run go on without the checkpoint.
    """
    started = manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        config=ocp.args.JsonSave(record)))
    if not started:
        listed = ", ".join(map(str, sorted(manager.all_steps()))) or "none"
        raise SaveFailed(f"the checkpoint at step {step} in {manager.directory} was not written: Orbax "
                         f"declined to save it (it lists steps {listed}; the folder holds "
                         f"{_listed(manager)}); training stopped so that nothing is lost silently")


def confirm_saved(manager: ocp.CheckpointManager, step: int, *, unit: str = "step") -> None:
    """Waits for pending saves, then raises SaveFailed unless ``step`` is a finished checkpoint on disk.

    A save that failed in the background (a full disk, a vanished folder) is one sentence here that
    names the step that was lost and the newest one still on disk, which the failed save left intact.
    ``unit`` is what the checkpoints' numbers count ("step" or "epoch"), for the message.
    """
    directory = str(manager.directory)
    try:
        with quiet_failed_saves(), _counting_failures():  # its abandoned writes are collected quietly
            manager.wait_until_finished()
    except Exception as err:  # Orbax re-raises its background thread's error, of any type
        raise SaveFailed(f"the checkpoint at {unit} {step} in {directory} could not be written "
                         f"({failure_reason(err)}), so training stopped; "
                         f"{last_good(directory, unit, besides=step)}") from None
    if not os.path.isdir(os.path.join(directory, str(step))):
        raise SaveFailed(f"the checkpoint at {unit} {step} in {directory} is missing after its save "
                         f"finished (the folder holds {unit}s {_listed(manager)})")


def failure_reason(err: BaseException) -> str:
    """Why a write failed, in words: the operating system's reason where the error carries one (Orbax and
    TensorStore put it in their message as ``os_error_code``), else the error's type and first line."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    code = re.search(r"os_error_code='?(\d+)", text)
    if code:
        return os.strerror(int(code.group(1)))
    first = (text.strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}" if first else type(err).__name__


def last_good(directory: str, unit: str = "step", *, besides: int | None = None) -> str:
    """Which checkpoint in ``directory`` is the newest complete one (other than ``besides``), in words."""
    steps = [int(n) for n in _step_names(directory) if int(n) != besides]
    if not steps:
        return f"there is no earlier checkpoint in {directory}"
    return f"the checkpoint at {unit} {max(steps)} is the last good one"


_SAVE_NOISE = ("raised an exception", "Failed to run", "thread (save_finalize) failed", "Failed to save")


def quiet_failed_saves() -> contextlib.AbstractContextManager:
    """Drops Orbax's log records (each with a traceback) about a save that failed in a background thread,
    while the block runs: they come while training goes on, and ``confirm_saved`` says it in one sentence
    at the next save or the end. Blocks nest, each with its own filter."""
    return _absl_dropping(lambda record: not (record.levelno >= logging.ERROR and any(
        text in record.getMessage() for text in _SAVE_NOISE)))


def _listed(manager: ocp.CheckpointManager) -> str:
    """The finished steps on disk, for a message."""
    return ", ".join(_step_names(str(manager.directory))) or "none"


def latest_step(manager: ocp.CheckpointManager) -> int | None:
    """The newest saved step, or None when the directory holds no checkpoint."""
    return manager.latest_step()


def _resolve_step(manager: ocp.CheckpointManager, step: int | None) -> int:
    """``step``, or the newest; one sentence when there is none or it does not exist."""
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
    """Returns ``(step, record)`` of the given (default newest) checkpoint."""
    step = _resolve_step(manager, step)
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return step, dict(restored["config"])


def _placed_struct(leaf: Any) -> jax.ShapeDtypeStruct:
    """``leaf`` as a restore target leaf, placed by ``parallel.restore_target`` if it has no sharding."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    return struct if getattr(struct, "sharding", None) is not None else parallel.restore_target(struct)


class _Damaged(Exception):
    """A checkpoint whose files cannot be read (its message says what failed)."""


def restore(manager: ocp.CheckpointManager, abstract_state: Any, *, kind: str,
            step: int | None = None, must_match: dict | None = None,
            upgrade: Callable[[dict], dict] | None = None,
            damage_is_error: bool = True) -> tuple[Any, dict]:
    """Restores ``(state, record)`` into the structure of ``abstract_state`` (from eval_shape).

    ``abstract_state`` may also be a function of the checkpoint's record that returns it (for a
    state whose shapes the record decides). ``upgrade`` turns a record written by older code into
    today's (filling in settings it predates) before anything is compared. ``kind`` and every key
    of ``must_match`` must equal what the checkpoint recorded; otherwise one sentence says which
    setting differs. A checkpoint whose files cannot be read is a UserError too
    (``damage_is_error=False``: the private ``_Damaged``).
    """
    step = _resolve_step(manager, step)
    try:
        step, config = read_config(manager, step)
    except Exception as err:  # a missing, empty or torn config file
        if damage_is_error:
            raise UserError(f"the checkpoint at step {step} in {manager.directory} is damaged: its "
                            f"config cannot be read ({type(err).__name__})") from None
        raise _Damaged(f"config unreadable: {type(err).__name__}") from None
    if upgrade is not None and config.get("kind") == kind:
        config = upgrade(config)
    if config.get("kind") != kind:
        raise UserError(f"{manager.directory} holds a {config.get('kind', 'unknown')!r} "
                        f"checkpoint, not a {kind!r} one")
    for key, want in (must_match or {}).items():
        if config.get(key) != want:
            raise UserError(f"the checkpoint in {manager.directory} was written with "
                            f"{key}={config.get(key)!r}, but this run has {key}={want!r}")
    if callable(abstract_state):
        abstract_state = abstract_state(config)
    # A leaf with no sharding of its own is restored onto this process's device(s), not onto
    # the devices that wrote it (a checkpoint of a 2-device run restores on one, and back).
    target = jax.tree.map(_placed_struct, abstract_state)
    try:
        with quiet_failed_restores(), _counting_failures():
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)))
    except Exception as err:  # Orbax and TensorStore raise many types, bare Exception too
        # The settings matched above, so a failure here is most likely damage, but a tree of
        # another shape (an older version of the model) fails the same way.
        if damage_is_error:
            raise UserError(f"the checkpoint at step {step} in {manager.directory} does not fit "
                            f"this model or is damaged ({type(err).__name__})") from None
        raise _Damaged(f"state unreadable: {type(err).__name__}") from None
    return restored["state"], config


# Orbax restores and background saves that failed in this process; quiet_failed_restores collects the
# work they abandoned after one.
_failed_operations = 0


@contextlib.contextmanager
def _counting_failures() -> Iterator[None]:
    """Counts an Orbax operation that raises (a restore, or waiting for a failed save) in
    ``_failed_operations``."""
    global _failed_operations
    try:
        yield
    except BaseException:
        _failed_operations += 1
        raise


@contextlib.contextmanager
def quiet_failed_restores() -> Iterator[None]:
    """Drops the noise a failed Orbax restore leaves behind, while the block runs; restores the hooks after.

    When TensorStore fails on a damaged file, Orbax closes its event loop while other reads
    are still pending. Their completion callbacks then raise "Event loop is closed" into
    ``sys.unraisablehook``, and the failed reads nobody awaited any more are logged by the
    ``asyncio`` logger ("Task exception was never retrieved"): a traceback per array after
    our one-line warning. Other unraisable exceptions and asyncio messages still get through.
    A save that fails in Orbax's background thread leaves such writes too. The block covers the
    restore and Python's collection of what it left (``gc.collect``, run only when a restore or a
    save failed inside the block: a full collection in a large process takes a good part of a second,
    and one that succeeded leaves nothing behind). Blocks nest: each adds and
    removes its own filter, so an inner block (one restore) leaves the outer one's (a whole run's)
    in place for reads that are only finalised later.
    """
    previous, failures = sys.unraisablehook, _failed_operations

    def hook(unraisable):
        """Passes everything on except a RuntimeError about a closed event loop."""
        value = unraisable.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        previous(unraisable)

    def drop(record: logging.LogRecord) -> bool:
        """This block's own filter (``drop_unretrieved``)."""
        return drop_unretrieved(record)

    logger = logging.getLogger("asyncio")
    sys.unraisablehook = hook
    logger.addFilter(drop)
    try:
        yield
    finally:
        if _failed_operations != failures:
            gc.collect()  # the abandoned reads are finalised here, while the filters still hold
        logger.removeFilter(drop)
        sys.unraisablehook = previous


def drop_unretrieved(record: logging.LogRecord) -> bool:
    """A logging filter: False for asyncio's "... exception was never retrieved" records."""
    return not str(record.msg).split("\n", 1)[0].endswith("exception was never retrieved")


@contextlib.contextmanager
def lock(directory: str | os.PathLike) -> Iterator[str]:
    """Holds ``directory/.lock`` for the block, or raises UserError naming the process that holds it.

    In a multi-process run every process writes its shards to the same directory, so each
    takes the lock of its own process index (``.lock.1``, ...); a second run still refuses.
    """
    name = LOCK_NAME if jax.process_count() == 1 else f"{LOCK_NAME}.{jax.process_index()}"
    path = os.path.join(os.path.abspath(directory), name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"cannot create the lock file {path}: {err.strerror}") from None
    try:
        try:
            # flock rather than "create if absent": the kernel releases it when the holder
            # exits or is killed, so a stale lock is taken over without guessing about pids.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(f"another run (process {holder}) is using {os.path.dirname(path)}; wait for it "
                            f"to finish, or choose another folder") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as err:  # a full disk
            raise UserError(f"cannot write the lock file {path}: {err.strerror}") from None
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # no holder named once released
    finally:
        os.close(fd)


def holder(directory: str | os.PathLike) -> str | None:
    """The process that holds ``directory``'s lock (its pid as the lock file says), or None when it is free.

    Only looks: a lock taken to look is released at once, and a missing lock file is not made.
    """
    name = LOCK_NAME if jax.process_count() == 1 else f"{LOCK_NAME}.{jax.process_index()}"
    path = os.path.join(os.path.abspath(directory), name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _set_aside(directory: str, name: str) -> str:
    """Moves ``directory/name`` into ``directory/damaged/`` (a fresh name there) and returns where."""
    target_dir = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target, n = os.path.join(target_dir, name), 1
    while os.path.exists(target):
        n += 1
        target = os.path.join(target_dir, f"{name}.{n}")
    os.rename(os.path.join(directory, name), target)
    return target


def set_aside_after(manager: ocp.CheckpointManager, step: int, reason: str) -> list[str]:
    """Moves every checkpoint newer than ``step`` into ``damaged/`` (never deleted), each with a
    CheckpointWarning saying ``reason``, and reloads the manager's list of steps; returns where they went."""
    directory = str(manager.directory)
    moved = []
    for newer in sorted(s for s in manager.all_steps() if s > step):
        where = _set_aside(directory, str(newer))
        warnings.warn(f"moved {os.path.join(directory, str(newer))} to {where}: {reason}", CheckpointWarning,
                      stacklevel=2)
        moved.append(where)
    if moved:
        manager.reload()  # it cached the moved steps: it would skip saving them again, and count them
    return moved


def leftover_temporaries(manager: ocp.CheckpointManager) -> list[str]:
    """Names of the temporary directories killed saves left in the checkpoint directory (Orbax's own test)."""
    return sorted(ocp.path.step.tmp_checkpoints(manager.directory))


def restore_latest_good(manager: ocp.CheckpointManager, abstract_state: Any, *, kind: str,
                        must_match: dict | None = None, upgrade: Callable[[dict], dict] | None = None,
                        set_aside: bool = False, restart: bool = False) -> tuple[Any, dict, int] | None:
    """``(state, record, step)`` of the newest checkpoint that restores, or None when there is none.

    Each newer checkpoint that fails to restore, and each leftover temporary directory of a
    killed save, gets a CheckpointWarning naming it; with ``set_aside`` (a run about to save
    again) they are moved into ``damaged/`` and the manager reloads its list of steps, so a new
    save of the same step neither collides nor is skipped. When checkpoints exist but none
    restores, NoGoodCheckpoint is raised unless ``restart``. A checkpoint of another kind or
    other settings is bad input, not damage: UserError. ``abstract_state`` and ``upgrade`` as in
    ``restore``.
    """
    directory = str(manager.directory)
    moves = []  # set aside only once the outcome is known: a refusal leaves the directory as it was
    temporaries = leftover_temporaries(manager)
    for name in temporaries:
        warnings.warn(f"{os.path.join(directory, name)} is the leftover of a save that was interrupted; "
                      "it is ignored", CheckpointWarning, stacklevel=2)
        moves.append(name)
    found = None
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            state, config = restore(manager, abstract_state, kind=kind, step=step, must_match=must_match,
                                    upgrade=upgrade, damage_is_error=False)
        except _Damaged as err:
            warnings.warn(f"the checkpoint at step {step} ({os.path.join(directory, str(step))}) cannot "
                          f"be restored ({err}); it is skipped", CheckpointWarning, stacklevel=2)
            moves.append(str(step))
            continue
        found = (state, config, step)
        break
    damaged = [n for n in moves if n not in temporaries]
    if found is None and damaged and not restart:
        raise NoGoodCheckpoint(f"none of the checkpoints in {directory} can be restored (steps "
                               f"{', '.join(damaged)}); --restart starts the run over, moving its folder "
                               f"aside (nothing is deleted)")
    if set_aside and moves:
        for name in moves:
            where = _set_aside(directory, name)
            warnings.warn(f"moved {os.path.join(directory, name)} to {where}", CheckpointWarning,
                          stacklevel=2)
        manager.reload()  # it cached the moved steps: it would skip saving them again, and count them
    return found

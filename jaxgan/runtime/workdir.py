"""A run is one folder, its workdir: the run's record, logs, figures and (by default) its checkpoints.

``claim(workdir, kind=..., record=..., must_match=...)`` is how every trainer (and ``reproduce``)
takes its folder, in one fixed order that writes nothing before every check has passed:

1. the folder is looked at before it is touched: empty or missing (a new run), a run of the same
   kind and settings (it resumes), or anything else, which is refused in one sentence naming the
   difference and the ways forward (a new ``--workdir``, or ``--restart``);
2. the checkpoint directory (``WORKDIR/checkpoints`` unless given) is checked likewise: one that
   holds checkpoints of another kind, checkpoint folders instead of checkpoints, or the
   checkpoints of another run folder is refused;
3. the run's lock is taken (``WORKDIR/.lock``, and the checkpoint directory's), so a second run on
   the same folder, or on the same checkpoints through another folder, is refused while the first runs;
4. with ``restart``, what the folder (and an outside checkpoint directory) held is moved aside to
   a sibling named for the moment, ``WORKDIR.replaced-20261206T093512Z``: never deleted;
5. once the run has opened its checkpoints, ``Workdir.commit()`` writes the record (``config.json``,
   with where the checkpoints are; an outside checkpoint directory gets ``run.json`` naming its
   workdir). A run refused before that leaves no trace: folders the claim made are removed.

Only folders that a jaxgan run wrote are ever moved: a folder of other files is refused even with
``restart``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax

from jaxgan.errors import UserError
from jaxgan.runtime import checkpoint, files, parallel

RECORD = "config.json"  # the run's record in its workdir
LINK = "run.json"  # in a checkpoint directory outside its workdir: which workdir it belongs to
DEFAULT_CHECKPOINTS = "checkpoints"
# What an earlier version of jaxgan left in a whole-study workdir, which had no record of its own.
_LEGACY_MARKERS = ("REPORT.md",)
_NAMES = {"gan": "GAN", "gan-sweep": "GAN sweep", "classifier": "classifier",
          "palindrome": "palindrome study", "reproduce": "whole-study (reproduce)"}


def kind_name(kind: str) -> str:
    """How a message calls a run of ``kind``."""
    return _NAMES.get(kind, repr(kind))


@dataclasses.dataclass
class Workdir:
    """A claimed run folder: its path, its checkpoint directory, and whether it held this run already.

    Nothing is written into it until the run calls ``commit()`` (once its checkpoints opened), so a run
    refused on the way (a wholly damaged checkpoint directory, say) leaves the folder as it was.
    """

    path: str
    checkpoint_dir: str
    existing: bool  # the folder held this run's record when it was claimed (it may resume)
    record: dict
    link: dict | None
    writer: bool
    committed: bool = False

    def file(self, *names: str) -> str:
        """A path inside the run folder."""
        return os.path.join(self.path, *names)

    def commit(self) -> None:
        """Writes the run's record (``config.json``) and, for checkpoints kept elsewhere, their ``run.json``
        (once: later calls do nothing)."""
        if self.writer and not self.committed:
            files.write_json(os.path.join(self.path, RECORD), self.record)
            if self.link is not None:
                files.write_json(os.path.join(self.checkpoint_dir, LINK), self.link)
        self.committed = True


_OWN_TEMPORARY = re.compile(r"\..+\.tmp(\.[^.]+)?")  # a file being written (``files.write_atomic``)


def _entries(path: str) -> list[str]:
    """What a folder holds, less lock files and files being written (alone, they are no run)."""
    try:
        return sorted(n for n in os.listdir(path)
                      if not n.startswith(checkpoint.LOCK_NAME) and not _OWN_TEMPORARY.fullmatch(n))
    except FileNotFoundError:
        return []


def _refuse_if_held(folder: str) -> None:
    """One UserError when another live run holds ``folder``'s lock."""
    pid = checkpoint.holder(folder)
    if pid is not None:
        raise UserError(f"another run (process {pid}) is using {folder}; wait for it to finish, or choose "
                        f"another folder")


def _read_json(path: str) -> Any:
    """The JSON in ``path``, or None when there is none that parses."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_record(path: str) -> dict | None:
    """The record of the run folder ``path`` (``config.json``), or None when it has none that parses.

    A Part 1 folder of an earlier version has no record, but its ``results.json`` holds the study's
    settings: they stand for it (with no ``checkpoint_dir``, as the checkpoints were kept apart).
    """
    record = _read_json(os.path.join(path, RECORD))
    if isinstance(record, dict) and "kind" in record:
        return record
    results = _read_json(os.path.join(path, "results.json"))
    if isinstance(results, dict) and isinstance(results.get("config"), dict):
        return {**results["config"], "kind": "palindrome"}
    return None


def _shown(value: Any) -> str:
    """A setting's value for a message (lists as space-separated values, as on the command line)."""
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return f"{value}"


def differences(saved: Mapping[str, Any], ours: Mapping[str, Any], names: Mapping[str, str] | None = None
                ) -> list[str]:
    """``"--lr 0.0002 there, 0.001 here"`` for every key of ``ours`` whose saved value differs."""
    names = names or {}
    found = []
    for key, want in ours.items():
        have = saved.get(key)
        if _jsonish(have) != _jsonish(want):
            found.append(f"{names.get(key, key)} {_shown(have) if key in saved else '(not recorded)'} there, "
                         f"{_shown(want)} here")
    return found


def _jsonish(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists), for comparison."""
    return json.loads(json.dumps(value))


def _ways_forward(path: str) -> str:
    """The two ways past a folder that holds another run."""
    return f"choose a new --workdir, or --restart to move {path} aside and start this run over"


def inspect(path: str, *, kind: str, must_match: Mapping[str, Any], names: Mapping[str, str] | None = None,
            restart: bool = False) -> bool:
    """Whether ``path`` holds this run already (True), or is empty or missing (False); otherwise one
    UserError saying what it holds instead. ``restart`` lets any jaxgan run folder through (it will be
    moved aside), never a folder of other files. (``check`` has refused a ``path`` that is a file.)"""
    held = _entries(path)
    if not held:
        return False
    record = read_record(path)
    if record is None:
        if any(n in held for n in _LEGACY_MARKERS) and restart:
            return False  # a Part 1 folder of an earlier version: a run folder, so it may be moved aside
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        if any(n in held for n in _LEGACY_MARKERS):
            raise UserError(f"{path} holds the results of an earlier jaxgan version's run ({shown}) but no "
                            f"record of its settings; {_ways_forward(path)}")
        raise UserError(f"{path} is not a jaxgan run folder (it holds {shown}), and a run never writes into "
                        f"or moves what it did not write; choose another --workdir")
    if restart:
        return False
    if record["kind"] != kind:
        raise UserError(f"{path} holds a {kind_name(record['kind'])} run, not a {kind_name(kind)} one; "
                        f"{_ways_forward(path)}")
    changed = differences(record, must_match, names)
    if changed:
        raise UserError(f"{path} holds another {kind_name(kind)} run ({'; '.join(changed)}); "
                        f"{_ways_forward(path)}")
    return True


def _owner_of(checkpoint_dir: str) -> str | None:
    """The run folder a checkpoint directory belongs to: what its ``run.json`` names, or the folder it
    sits in when that is a run folder keeping its checkpoints there; None when neither."""
    try:
        with open(os.path.join(checkpoint_dir, LINK), encoding="utf-8") as f:
            owner = json.load(f).get("workdir")
        if isinstance(owner, str):
            return owner
    except (OSError, ValueError, AttributeError):
        pass
    parent = os.path.dirname(checkpoint_dir)
    record = read_record(parent)
    if record is not None and record.get("checkpoint_dir") == os.path.basename(checkpoint_dir):
        return parent
    return None


def _check_checkpoint_dir(checkpoint_dir: str, workdir: str, *, checkpoint_kind: str, nested: bool) -> None:
    """Refuses checkpoints that are not this run's: another run folder's, another kind's, or (unless
    ``nested``, Part 1's one folder per sweep) a folder of checkpoint folders."""
    owner = _owner_of(checkpoint_dir)
    if owner is not None and os.path.abspath(owner) != workdir and os.path.isdir(owner):
        raise UserError(f"the checkpoint directory {checkpoint_dir} belongs to the run in {owner}; use "
                        f"--workdir {owner} to continue that run, or choose another --checkpoint-dir")
    if not os.path.isdir(checkpoint_dir):
        return
    found = checkpoint.kind_at(checkpoint_dir)
    if nested:
        if found is not None:
            what = kind_name(found) if found != checkpoint_kind else "one sweep's"
            raise UserError(f"{checkpoint_dir} holds {what} checkpoints of its own, but this run keeps one "
                            f"folder of checkpoints per sweep there; choose another --checkpoint-dir")
        for name in checkpoint.nested_checkpoint_dirs(checkpoint_dir):
            inner = checkpoint.kind_at(os.path.join(checkpoint_dir, name))
            if inner not in (checkpoint_kind, "unreadable"):
                raise UserError(f"{checkpoint_dir}/{name} holds {inner!r} checkpoints, not this run's; "
                                f"choose another --checkpoint-dir")
        return
    if checkpoint.kind_at(checkpoint_dir) == "unreadable":
        return  # a damaged newest checkpoint: the run sets it aside and resumes an older one, or says so
    checkpoint.check_kind(checkpoint_dir, checkpoint_kind, flag="--checkpoint-dir", must_exist=False)


def _stamp() -> str:
    """This moment in UTC, for the name of a folder moved aside."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def move_aside(path: str) -> str | None:
    """Moves what ``path`` holds (less its lock files) into a new sibling ``PATH.replaced-STAMP``; returns
    that folder, or None when there was nothing to move."""
    held = _entries(path)
    if not held:
        return None
    target, n = f"{path}.replaced-{_stamp()}", 1
    while os.path.lexists(target):
        n += 1
        target = f"{path}.replaced-{_stamp()}-{n}"
    os.makedirs(target)
    for name in held:
        os.rename(os.path.join(path, name), os.path.join(target, name))
    return target


def _checkpoint_dir_of(workdir: str, given: str | None) -> str:
    """The checkpoint directory: ``given`` (absolute), or the workdir's own ``checkpoints``."""
    return os.path.abspath(given) if given is not None else os.path.join(workdir, DEFAULT_CHECKPOINTS)


def checkable_parent(path: str, what: str) -> None:
    """Raises UserError unless folder ``path`` is writable, or could be made here (its nearest existing
    ancestor is a writable folder); creates nothing. ``what`` names the folder in messages."""
    target = os.path.abspath(path)
    existing = target
    while existing != os.path.dirname(existing) and not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):  # a file where a folder would have to be
        if existing == target:
            raise UserError(f"the {what} {path} is a file, not a directory")
        raise UserError(f"cannot create the {what} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == target:
            raise UserError(f"the {what} {path} is not writable")
        raise UserError(f"cannot create the {what} {path}: {existing} is not writable")


def check(workdir: str, *, kind: str, must_match: Mapping[str, Any], checkpoint_dir: str | None = None,
          checkpoint_kind: str | None = None, nested: bool = False, names: Mapping[str, str] | None = None,
          restart: bool = False) -> bool:
    """Every check ``claim`` makes before it writes anything (see the module's docstring); returns
    whether the folder already holds this run. Scripts call it before loading data or compiling."""
    path = os.path.abspath(workdir)
    checkable_parent(path, "run folder")
    _refuse_if_held(path)
    existing = inspect(path, kind=kind, must_match=must_match, names=names, restart=restart)
    ckdir = _checkpoint_dir_of(path, checkpoint_dir)
    if checkpoint_dir is not None:
        checkable_parent(ckdir, "checkpoint directory")
        _check_checkpoint_dir(ckdir, path, checkpoint_kind=checkpoint_kind or kind, nested=nested)
    if existing:
        recorded = read_record(path).get("checkpoint_dir")
        # A whole-study run and a GAN sweep keep no checkpoints themselves (their runs do).
        legacy = recorded is None and kind not in ("reproduce", "gan-sweep")
        if legacy and checkpoint_dir is None and not _holds_checkpoints(ckdir):
            raise UserError(f"{path} holds a run of an earlier jaxgan version, which kept its checkpoints "
                            f"apart (by default under checkpoints/ in the folder it ran from): give that "
                            f"directory with --checkpoint-dir to continue the run, or {_ways_forward(path)}")
        if recorded is not None and os.path.join(path, recorded) != ckdir:
            where = os.path.join(path, recorded)
            default = where == _checkpoint_dir_of(path, None)
            flag = "no --checkpoint-dir" if default else f"--checkpoint-dir {where}"
            raise UserError(f"{path} keeps its checkpoints in {where}, not {ckdir}; give {flag} to continue "
                            f"that run, or {_ways_forward(path)}")
    return existing


def _holds_checkpoints(path: str) -> bool:
    """Whether ``path`` holds checkpoints, or folders of checkpoints."""
    return checkpoint.kind_at(path) is not None or bool(checkpoint.nested_checkpoint_dirs(path))


@contextlib.contextmanager
def claim(workdir: str, *, kind: str, record: Mapping[str, Any], must_match: Mapping[str, Any],
          checkpoint_dir: str | None = None, checkpoint_kind: str | None = None, nested: bool = False,
          names: Mapping[str, str] | None = None, restart: bool = False,
          log: Callable[[str], None] | None = None, checkpoints: bool = True) -> Iterator[Workdir]:
    """Takes ``workdir`` for one run for the block (see the module's docstring) and yields its Workdir.

    ``record`` is the run's record (settings and data identity) written to ``config.json``; a folder
    that holds a record of another ``kind``, or whose ``must_match`` keys differ, is refused.
    ``checkpoint_kind`` is the kind of the checkpoints (default ``kind``); ``nested`` says the run keeps
    folders of checkpoints there (Part 1's sweeps). ``names`` maps record keys to flags for messages.
    ``log`` gets one line naming where a restart moved the earlier run. ``checkpoints=False``: a run
    that keeps none of its own (its stages are runs of their own). Raises UserError, having written
    nothing, for every refusal.
    """
    path = os.path.abspath(workdir)
    check(workdir, kind=kind, must_match=must_match, checkpoint_dir=checkpoint_dir,
          checkpoint_kind=checkpoint_kind, nested=nested, names=names, restart=restart)
    ckdir = _checkpoint_dir_of(path, checkpoint_dir)
    outside = os.path.commonpath([ckdir, path]) != path
    writer = parallel.is_writer()
    created = [made for folder in (path, ckdir) for made in _missing_chain(folder)]
    folder = None
    with contextlib.ExitStack() as stack:
        try:
            _make(path, "run folder")
            stack.enter_context(checkpoint.lock(path))
            # Looked at again under the lock: another run may have taken the folder since the first look.
            existing = inspect(path, kind=kind, must_match=must_match, names=names, restart=restart)
            if outside:
                _make(ckdir, "checkpoint directory")
                stack.enter_context(checkpoint.lock(ckdir))
            _barrier("jaxgan-workdir-inspected")  # every process looked before process 0 moves anything
            if restart and writer:
                for moving in (path, ckdir) if outside else (path,):
                    moved = move_aside(moving)
                    if moved is not None and log is not None:
                        log(f"moved the earlier contents of {moving} to {moved}")
            existing = existing and not restart
            _barrier("jaxgan-workdir-cleared")
            if checkpoints and not outside:
                _make(ckdir, "checkpoint directory")
                stack.enter_context(checkpoint.lock(ckdir))
            shown = ckdir if outside else os.path.relpath(ckdir, path)
            kept = {"checkpoint_dir": shown} if checkpoints else {}
            folder = Workdir(path=path, checkpoint_dir=ckdir, existing=existing,
                             record={**record, "kind": kind, **kept},
                             link={"workdir": path, "kind": kind} if outside else None, writer=writer)
            yield folder
        finally:
            if folder is None or not folder.committed:  # refused before the run began: leave no trace
                for made in sorted(set(created), key=len, reverse=True):  # the deepest first
                    _remove_if_only_locks(made)


def _missing_chain(folder: str) -> list[str]:
    """``folder`` and each of its ancestors that does not exist yet (what making it would create)."""
    missing = []
    while not os.path.exists(folder) and folder != os.path.dirname(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _remove_if_only_locks(folder: str) -> None:
    """Removes ``folder`` when it holds nothing but lock files (a claim that was refused made it)."""
    try:
        if _entries(folder):
            return
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
    except OSError:
        pass


def _make(folder: str, what: str) -> None:
    """Makes ``folder`` (and its parents), or one UserError saying why it cannot be made."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the {what} {folder}: {err.strerror}") from None


def _barrier(name: str) -> None:
    """Waits for every process of a multi-process run (process 0 moves and writes; the others wait)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def checkpoints_of(path: str) -> str:
    """The checkpoint directory of ``path``: a run folder's (what its record names), or ``path`` itself."""
    record = read_record(path)
    if record is None or not isinstance(record.get("checkpoint_dir"), str):
        return path
    return os.path.join(path, record["checkpoint_dir"])  # an absolute one replaces ``path``

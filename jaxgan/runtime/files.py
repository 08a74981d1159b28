"""Files a run writes: one atomic writer for every kind of output, and metrics logs as JSON lines.

``write_atomic(path, write)`` is the only way this project writes a result file: ``write`` fills
a temporary file beside ``path`` (same folder, so the rename is atomic), which then replaces
``path``. A reader never sees half a file, and a run killed mid-write leaves the old file (or
none) and a stray temporary, never a torn result. A write the disk refuses (full, gone, read-only)
is ``WriteFailed``, one sentence naming the file and the reason, with the old file left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import IO

import numpy as np

from jaxgan.errors import UserError


class WriteFailed(UserError):
    """A result file could not be written (a full, vanished or read-only disk); the old one is intact."""


def _failed(path: str | os.PathLike, err: OSError) -> WriteFailed:
    """The one sentence for a write the operating system refused."""
    return WriteFailed(f"cannot write {os.fspath(path)}: {err.strerror or err}; the run stopped there, and "
                       f"what was written before it is intact")


def make_dir(path: str | os.PathLike) -> str:
    """Makes folder ``path`` and its parents (an existing one is fine); WriteFailed when the disk refuses."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise _failed(path, err) from None
    return os.fspath(path)


_UMASK = os.umask(0o022)  # read once (setting it is the only way), then put back
os.umask(_UMASK)


def _temporary_beside(path: str, binary: bool) -> tuple[IO, str]:
    """A new temporary file in ``path``'s folder, named for this process alone (``.NAME.XXXXXXXX.EXT``):
    two writers never share one, and the extension is kept for writers that choose a format by it."""
    folder, name = os.path.split(os.path.abspath(path))
    root, ext = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{root}.", suffix=f".tmp{ext}")
    os.fchmod(fd, 0o666 & ~_UMASK)  # what open() would have made, not mkstemp's private 0o600
    return os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})), tmp


def write_all(writes: Mapping[str | os.PathLike, tuple[Callable[[IO], None], bool]]) -> list[str]:
    """Writes several files as one: ``{path: (write, binary)}``; every ``write(file)`` fills a temporary
    beside its path first, and only when all have succeeded are they renamed over their paths, so an
    error in any of them replaces none (a refusal of the disk is WriteFailed). Returns the paths."""
    made: list[tuple[str, str]] = []
    current = ""
    try:
        for path, (write, binary) in writes.items():
            current = os.fspath(path)
            f, tmp = _temporary_beside(current, binary)
            made.append((tmp, current))
            with f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in made:
            current = path
            os.replace(tmp, path)
    except BaseException as err:
        for tmp, _ in made:
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(err, OSError):
            raise _failed(current, err) from None
        raise
    return [path for _, path in made]


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False) -> str:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it over ``path``; returns path.

    The temporary is this process's own and keeps ``path``'s extension (``.name.XXXXXXXX.tmp.png``),
    so writers that choose a format from the name (matplotlib, numpy) write the same format. On an
    error it is removed and ``path`` is left as it was.
    """
    return write_all({path: (write, binary)})[0]


def write_text(path: str | os.PathLike, text: str) -> str:
    """Writes ``text`` (UTF-8) atomically; returns the path."""
    return write_atomic(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 2) -> str:
    """Writes ``obj`` as JSON atomically (with a final newline); returns the path."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> str:
    """Writes ``array`` as a .npy file atomically; returns the path."""
    return write_atomic(path, lambda f: np.save(f, array), binary=True)


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> str:
    """Saves a matplotlib Figure as PNG atomically; returns the path."""
    return write_atomic(path, lambda f: fig.savefig(f, format="png", **savefig_kwargs), binary=True)


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Appends each record as one line and flushes it to disk (a line is never half-written)."""
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:  # a torn last line is what read_jsonl ignores, and resume cuts away
        raise _failed(path, err) from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Reads every complete line; a torn last line (a killed write) is ignored."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
    return records


def truncate_jsonl(path: str | os.PathLike, key: str, last: int) -> None:
    """Keeps only records whose ``key`` is <= ``last`` (used when a run resumes from a checkpoint)."""
    if not os.path.exists(path):
        return
    kept = [r for r in read_jsonl(path) if r.get(key, last) <= last]
    write_text(path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept))

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
from collections.abc import Callable, Iterable
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


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False) -> str:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it over ``path``; returns path.

    The temporary keeps ``path``'s extension (``name.tmp.png``), so writers that choose a format
    from the name (matplotlib, numpy) write the same format. On an error it is removed.
    """
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise _failed(path, err) from None
        raise
    return path


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

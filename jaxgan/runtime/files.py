"""Files a run writes: one atomic writer for every kind of output, and metrics logs as JSON lines.

``write_atomic(path, write)`` is the only way this project writes a result file: ``write`` fills
a temporary file beside ``path`` (same folder, so the rename is atomic), which then replaces
``path``. A reader never sees half a file, and a run killed mid-write leaves the old file (or
none) and a stray temporary, never a torn result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import IO

import numpy as np


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
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
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
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


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

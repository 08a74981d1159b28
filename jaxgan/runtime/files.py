"""Files a run writes: one atomic writer for every kind of output, and metrics logs as JSON lines.

``write_atomic(path, write)`` is the only way this project writes a result file: ``write`` fills
a temporary file beside ``path`` (same folder, so the rename is atomic), which then replaces
``path``. A reader never sees half a file, and a run killed mid-write leaves the old file (or
none) and a stray temporary, never a torn result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import IO

import numpy as np

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
    error in any of them replaces none. Returns the paths."""
    made: list[tuple[str, str]] = []
    try:
        for path, (write, binary) in writes.items():
            f, tmp = _temporary_beside(os.fspath(path), binary)
            made.append((tmp, os.fspath(path)))
            with f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in made:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in made:
            if os.path.exists(tmp):
                os.remove(tmp)
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

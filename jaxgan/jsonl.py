"""Metrics logs as JSON lines: one object per line, appended whole, read back as a list."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable


def append(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Appends each record as one line and flushes it to disk (a line is never half-written)."""
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read(path: str | os.PathLike) -> list[dict]:
    """Reads every complete line; a torn last line (a killed write) is ignored."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
    return records


def truncate_after(path: str | os.PathLike, key: str, last: int) -> None:
    """Keeps only records whose ``key`` is <= ``last`` (used when a run resumes from a checkpoint)."""
    if not os.path.exists(path):
        return
    kept = [r for r in read(path) if r.get(key, last) <= last]
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept))
    os.replace(tmp, path)

"""TensorBoard event files in a run's folder, written while it trains, without TensorFlow.

    writer = open_writer(workdir, enabled=jax.process_index() == 0)
    writer.hparams(to_record(config), metrics=("d_loss", "g_loss"))   # once, at the start
    for each chunk:
        writer.scalars(step, {"d_loss": 0.69, "g_loss": 0.71})        # numbers, numpy or JAX scalars
        writer.images(step, {"samples": grid}, value_range=(-1.0, 1.0))  # a tanh image, [H, W]
        writer.flush()                                               # after each chunk's host sync
    writer.close()                                                   # or: with open_writer(...) as writer

The event files (``events.out.tfevents.*``) go directly into ``logdir``, the run's folder, as in
Flax's examples, so ``tensorboard --logdir runs`` shows every run under ``runs/`` by its folder.
``metrics.jsonl`` stays the record figures and reports are drawn from; these files are for watching.

A writer opened with ``enabled=False`` (every process but the one that writes a run's files)
accepts the same calls and does nothing: it creates no folder and imports nothing.

The writer underneath is tensorboardX's: pure Python over protobuf (which JAX's stack already
installs), maintained, with scalars, images and hparams. Its summaries and its event file writer
are used directly, in the calling thread: its ``SummaryWriter`` hands events to a background
thread through a queue, and its ``flush()`` does not wait for that queue, so an event written
just before ``flush()`` can still be missing from the file (with ``SummaryWriter`` underneath,
``tests/test_tensorboard.py``'s flush test failed). clu's ``metric_writers``, what Flax's examples
use, was tried in a fresh environment with clu 0.0.12 and no TensorFlow: ``from clu import
metric_writers`` fails with ``No module named 'tensorflow'`` (its ``__init__`` imports its
TensorFlow summary writer unconditionally), so it would bring TensorFlow into every install.
tensorboardX 2.6.5 imports in 0.15 s without TensorFlow, and TensorBoard's own reader
(``EventAccumulator``) reads its files back without TensorFlow too (``tests/test_tensorboard.py``).
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_opened = itertools.count()  # tells apart event files one process opens within the same second


class Writer:
    """Scalars, images and hparams of one run into its folder's event file; a no-op when disabled.

    Made by ``open_writer``. Call it from the host (values are copied to numpy); events are written
    to the file's buffer as they come, and reach the disk at ``flush()`` or ``close()``. A scalar
    costs about 17 us and a 152x152 grid about 15 ms (2 CPU cores): at thousands of steps a second
    (an accelerator), write a chunk's means, or every Nth step, rather than every step.
    """

    def __init__(self, events_writer: Any | None, logdir: str | None = None,
                 opener: Any | None = None):
        """Wraps a tensorboardX ``EventsWriter``, or None for a writer that writes nothing; ``opener``
        makes the ``EventsWriter`` at the first event instead (a file only once there is something in it)."""
        self._writer = events_writer
        self._logdir = logdir
        self._opener = opener

    @property
    def enabled(self) -> bool:
        """Whether this writer writes anything."""
        return self._writer is not None or self._opener is not None

    @property
    def logdir(self) -> str | None:
        """The folder the event file is in (None when disabled)."""
        return self._logdir

    def _write(self, summary: Any, step: int | None = None) -> None:
        """One tensorboardX ``Summary`` as an event at ``step``, stamped with the time now."""
        from tensorboardX.proto.event_pb2 import Event

        event = Event(summary=summary, wall_time=time.time())
        if step is not None:
            event.step = step
        if self._writer is None:  # a lazy writer's first event
            self._writer, self._opener = self._opener(), None
        self._writer.write_event(event)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        """One point per name at ``step``: Python numbers, numpy or JAX scalars (as float32, as
        TensorBoard keeps them). Names may hold ``/`` to group them (``train/loss``, ``val/loss``)."""
        if not self.enabled:
            return
        from tensorboardX.summary import scalar

        step = int(step)
        for name, value in values.items():
            self._write(scalar(name, float(np.asarray(value))), step)

    def images(self, step: int, images: Mapping[str, Any], *,
               value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        """One picture per name at ``step``.

        Each image is ``[H, W]`` (grey) or ``[H, W, C]`` with C 1 (grey), 3 (RGB) or 4 (RGBA).
        uint8 images are taken as 0..255. Any other dtype is mapped linearly from ``value_range``
        (default [0, 1]; a generator's tanh output is ``(-1.0, 1.0)``) to 0..255, values outside it
        clipped, then rounded to uint8.
        """
        if not self.enabled:
            return
        from tensorboardX.summary import image as image_summary

        step = int(step)
        for name, image in images.items():
            pixels = to_uint8(image, value_range)
            if pixels.ndim == 2:
                pixels = pixels[..., None]
            self._write(image_summary(name, pixels, dataformats="HWC"), step)

    def hparams(self, values: Mapping[str, Any], metrics: Sequence[str] = ()) -> None:
        """The run's settings, for TensorBoard's HPARAMS tab, once per run.

        ``values`` is a flat mapping such as ``jaxgan.configs.base.to_record(config)``: numbers,
        booleans and strings are kept as they are, lists and tuples as their items joined by spaces
        (``"128 256 512 1024"``), None as ``"None"``. ``metrics`` names the scalars (written with
        ``scalars``) that the tab shows beside the settings.
        """
        if not self.enabled:
            return
        from tensorboardX.summary import hparams as hparams_summary

        flat = {name: _hparam_value(value) for name, value in values.items()}
        experiment, session_start, _ = hparams_summary(flat, {name: 0.0 for name in metrics})
        self._write(experiment)
        self._write(session_start)

    def flush(self) -> None:
        """Writes every pending event to the file now (TensorBoard sees it at its next reload)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the file; later calls do nothing."""
        if self._writer is not None:
            self._writer.close()
        self._writer = self._opener = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_writer(logdir: str, enabled: bool = True, lazy: bool = False) -> Writer:
    """A writer of a new event file directly in ``logdir`` (created if missing), or, with
    ``enabled=False``, one that writes nothing and touches no file. ``lazy`` makes the file (and the
    folder) only at the first event, so a run refused before it began leaves none.

    Each writer opens a file of its own (``events.out.tfevents.TIME.HOST.PID.N``), so a resumed
    run adds a file beside the first one's and TensorBoard shows both as one run.
    """
    if not enabled:
        return Writer(None)
    from tensorboardX.event_file_writer import EventsWriter

    suffix = f".{os.getpid()}.{next(_opened)}"

    def opener() -> Any:
        """The event file's writer, made now."""
        os.makedirs(logdir, exist_ok=True)
        return EventsWriter(os.path.join(logdir, "events"), filename_suffix=suffix)

    return Writer(None, logdir, opener) if lazy else Writer(opener(), logdir)


def to_uint8(image: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``image`` as uint8 0..255: uint8 as it is; anything else mapped linearly from ``value_range``
    to 0..255, clipped and rounded. Raises ValueError for a shape that is no ``[H, W]`` or
    ``[H, W, C]`` with C 1, 3 or 4, or an empty or reversed range."""
    array = np.asarray(image)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
        raise ValueError(f"an image must be [H, W] or [H, W, C] with C 1, 3 or 4, not {list(array.shape)}")
    if array.dtype == np.uint8:
        return array
    low, high = (float(bound) for bound in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"value_range must be two finite numbers, low < high, not {value_range}")
    scaled = (array.astype(np.float64) - low) * (255.0 / (high - low))
    return np.rint(np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 255.0)).astype(np.uint8)


def _hparam_value(value: Any) -> bool | str | float:
    """A config value as TensorBoard's hparams keep it: a number, a boolean or a string."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)

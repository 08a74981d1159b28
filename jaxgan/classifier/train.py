"""The digit classifier, the host loop: ``train_and_evaluate`` trains (or resumes) it on an image set.

Data flow: the uint8 images and int labels go to the device once; the project's run loop
(``jaxgan.runtime.loop``: lock, deferred signals, resume from the newest good checkpoint)
opens the run; one jitted ``train_epoch`` (``jaxgan.classifier.steps``) runs per epoch and the
host reads one small dict of metrics per epoch, saves a checkpoint and appends the metrics to
``metrics.jsonl``.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.classifier.steps import (
    ClassifierData,
    check_split,
    evaluate,
    init_state,
    run_keys,
    split_holdout,
    train_epoch,
)
from jaxgan.configs.base import resume_keys, to_record
from jaxgan.configs.classifier import KIND, ClassifierConfig
from jaxgan.errors import UserError
from jaxgan.models.classifier import NUM_CLASSES
from jaxgan.runtime import files, loop

KEEP_CHECKPOINTS = 2  # the newest, and one to fall back on if the newest is damaged


def checkpoint_record(config: ClassifierConfig, *, source: str, num_images: int) -> dict:
    """What a checkpoint records: the config, its kind, and the data it was trained on."""
    return {**to_record(config, KIND), "source": source, "num_images": num_images}


def _describe(index: tuple[int, ...], name: str, value: float, *, epoch: int) -> str:
    """Where a non-finite metric appeared."""
    return f"{name} became {value} in epoch {epoch} (a lower --learning-rate may help)"


def train_and_evaluate(images: np.ndarray, labels: np.ndarray, config: ClassifierConfig, *,
                       checkpoint_dir: str | os.PathLike, source: str = "",
                       workdir: str | os.PathLike | None = None, restart: bool = False,
                       on_epoch: Callable[[dict], None] | None = None) -> tuple[dict, dict]:
    """Trains on images uint8 [N, 28, 28] with labels [N]; saves each epoch; resumes a checkpoint there.

    Writes ``config.json`` and ``metrics.jsonl`` (one line per epoch) into ``workdir`` when given,
    and calls ``on_epoch(metrics)`` after every epoch. The checkpoint directory is locked for the
    run; a damaged newest checkpoint is set aside with a warning and an older one resumed
    (``restart`` trains from scratch when none is good); SIGINT or SIGTERM stops after the
    current epoch's checkpoint with ``Interrupted``; a non-finite metric raises ``loop.NonFinite``
    without saving. Returns ``({"params": ...}, summary)``: the trained variables, and the last
    epoch's metrics plus the split sizes and the epoch it started from.
    """
    config.validate()
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) < 2:
        raise UserError(f"the classifier needs at least two images, not {len(images)}")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"the classifier takes uint8 images [N, 28, 28], not {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1] or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise UserError("the classifier needs one label in 0..9 per image")
    check_split(len(images), config)
    keys = run_keys(config.seed)
    train_idx, holdout_idx = split_holdout(len(images), config.holdout_fraction, keys["split"])
    record = checkpoint_record(config, source=source, num_images=len(images))
    data = ClassifierData(images=jnp.asarray(images), labels=jnp.asarray(labels, jnp.int32),
                          train_idx=jnp.asarray(train_idx), holdout_idx=jnp.asarray(holdout_idx))
    must_match = {k: record[k] for k in [*resume_keys(ClassifierConfig), "num_images"]}
    abstract = jax.eval_shape(functools.partial(init_state, config=config), keys["init"])
    metrics_path = None if workdir is None else os.path.join(workdir, "metrics.jsonl")
    with loop.open_run(os.fspath(checkpoint_dir), kind=KIND, record=record, abstract=abstract,
                       must_match=must_match, keep=KEEP_CHECKPOINTS, restart=restart, unit="epoch") as run:
        start = run.start
        state = run.state if run.resumed else init_state(keys["init"], config)
        # Orbax returns arrays committed to a device and init does not; jit caches on that, so
        # commit both alike to let a resumed run reuse the compiled epoch instead of recompiling.
        state = jax.device_put(state, jax.local_devices()[0])
        if workdir is not None and run.writer:
            files.make_dir(workdir)
            files.write_json(os.path.join(workdir, "config.json"), record)
            files.truncate_jsonl(metrics_path, "epoch", start)
        metrics: dict = {}
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            # fold_in by epoch number: a resumed run draws exactly what an unbroken one would.
            state, device_metrics = train_epoch(state, data, jax.random.fold_in(keys["train"], epoch), config)
            metrics = {"epoch": epoch + 1, **{k: float(v) for k, v in device_metrics.items()},
                       "seconds": time.perf_counter() - began}
            run.check_finite({k: np.asarray([v]) for k, v in metrics.items()},
                             functools.partial(_describe, epoch=epoch + 1))
            run.save(epoch + 1, state)
            if metrics_path is not None and run.writer:
                files.append_jsonl(metrics_path, [metrics])
            if on_epoch is not None:
                on_epoch(metrics)
            signum = run.stop_signal() if epoch + 1 < config.epochs else None
            if signum is not None:
                run.interrupt(signum, f"saved the checkpoint of epoch {epoch + 1} in {checkpoint_dir}; the "
                                      f"same command resumes from there")
    if not metrics:  # nothing left to train: report the checkpoint as it stands
        held = evaluate(state.params, data.images[data.holdout_idx], data.labels[data.holdout_idx])
        metrics = {"epoch": start, "holdout_loss": float(held["loss"]),
                   "holdout_accuracy": float(held["accuracy"])}
    summary = {**metrics, "start_epoch": start, "num_train": len(train_idx), "num_holdout": len(holdout_idx)}
    return {"params": state.params}, summary

"""The digit classifier, the host loop: ``train_and_evaluate`` trains (or resumes) it on an image set.

Data flow: the uint8 images and int labels go to the device once; the project's run loop
(``jaxgan.runtime.loop``: lock, deferred signals, resume from the newest good checkpoint)
opens the run; one jitted ``train_epoch`` (``jaxgan.classifier.steps``) runs per epoch and the
host reads one small dict of metrics per epoch, saves a checkpoint and appends the metrics to
``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import functools
import time

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
from jaxgan.configs.base import flag_names, resume_keys, to_record
from jaxgan.configs.classifier import KIND, ClassifierConfig
from jaxgan.data.images import ImageSet
from jaxgan.errors import UserError
from jaxgan.models.classifier import NUM_CLASSES
from jaxgan.runtime import files, loop, tensorboard
from jaxgan.runtime import workdir as workdir_lib

KEEP_CHECKPOINTS = 2  # the newest, and one to fall back on if the newest is damaged


def checkpoint_record(config: ClassifierConfig, *, source: str, num_images: int) -> dict:
    """What a checkpoint records: the config, its kind, and the data it was trained on."""
    return {**to_record(config, KIND), "source": source, "num_images": num_images}


def _describe(index: tuple[int, ...], name: str, value: float, *, epoch: int) -> str:
    """Where a non-finite metric appeared."""
    return f"{name} became {value} in epoch {epoch} (a lower --learning-rate may help)"


def identity(record: dict) -> dict:
    """What another run must share with this one to continue it: the settings and the image count."""
    return {k: record[k] for k in [*resume_keys(ClassifierConfig), "num_images"]}


def check_workdir(config: ClassifierConfig, workdir: str, *, data: ImageSet | None = None,
                  checkpoint_dir: str | None = None, restart: bool = False) -> bool:
    """The checks ``train_and_evaluate`` makes of its run folder before it writes anything (without
    ``data`` the image count is not compared); whether the folder holds this run already."""
    record = checkpoint_record(config, source="", num_images=0 if data is None else len(data.images))
    must_match = (identity(record) if data is not None
                  else {k: record[k] for k in resume_keys(ClassifierConfig)})
    return workdir_lib.check(workdir, kind=KIND, must_match=must_match, checkpoint_dir=checkpoint_dir,
                             names=flag_names(ClassifierConfig), restart=restart)


def train_and_evaluate(config: ClassifierConfig, workdir: str, *, data: ImageSet,
                       checkpoint_dir: str | None = None, restart: bool = False,
                       progress: loop.ProgressFn = loop.ignore) -> dict:
    """Trains on ``data`` (images uint8 [N, 28, 28], labels [N]), saving every epoch, in the run folder
    ``workdir``.

    The folder (``jaxgan.runtime.workdir.claim``) holds ``config.json``, ``metrics.jsonl`` (one line
    per epoch, also as TensorBoard events) and the checkpoints (``workdir/checkpoints`` unless
    ``checkpoint_dir`` says otherwise); a folder that holds this run resumes it, one that holds
    another run is refused, and ``restart`` moves what it held aside. A damaged newest checkpoint
    is set aside with a warning and an older one resumed; SIGINT or SIGTERM stops after the current
    epoch's checkpoint with ``Interrupted``; a non-finite metric raises ``loop.NonFinite`` without saving.
    ``progress`` gets ``loop.Progress`` events ("start", then "chunk" per epoch).

    Returns the trained ``variables`` (``{"params": ...}``), the last epoch's metrics, the split
    sizes, the epoch it started from and the run's folders.
    """
    config.validate()
    images, labels = np.asarray(data.images), data.labels
    if labels is None:
        raise UserError(f"{data.source or 'the image set'} has no labels; the classifier needs labelled "
                        f"digits")
    labels = np.asarray(labels)
    if len(images) < 2:
        raise UserError(f"the classifier needs at least two images, not {len(images)}")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"the classifier takes uint8 images [N, 28, 28], not {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1] or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise UserError("the classifier needs one label in 0..9 per image")
    check_split(len(images), config)
    keys = run_keys(config.seed)
    train_idx, holdout_idx = split_holdout(len(images), config.holdout_fraction, keys["split"])
    record = checkpoint_record(config, source=data.source, num_images=len(images))
    data_dev = ClassifierData(images=jnp.asarray(images), labels=jnp.asarray(labels, jnp.int32),
                              train_idx=jnp.asarray(train_idx), holdout_idx=jnp.asarray(holdout_idx))
    abstract = jax.eval_shape(functools.partial(init_state, config=config), keys["init"])
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(workdir_lib.claim(
            workdir, kind=KIND, record=record, must_match=identity(record), checkpoint_dir=checkpoint_dir,
            names=flag_names(ClassifierConfig), restart=restart, log=lambda text: progress(loop.Progress(
                "message", "classifier", 0, config.epochs, text=text))))
        run = stack.enter_context(loop.open_run(folder.checkpoint_dir, kind=KIND, record=record,
                                                abstract=abstract, must_match=identity(record),
                                                keep=KEEP_CHECKPOINTS, unit="epoch"))
        folder.commit()  # the checkpoints opened: this is the folder's run now
        events = stack.enter_context(tensorboard.open_writer(folder.path, enabled=run.writer))
        events.hparams(record, metrics=["holdout_accuracy", "train_loss"])  # the scalars the tab shows
        metrics_path = folder.file("metrics.jsonl")
        start = run.start
        state = run.state if run.resumed else init_state(keys["init"], config)
        # Orbax returns arrays committed to a device and init does not; jit caches on that, so
        # commit both alike to let a resumed run reuse the compiled epoch instead of recompiling.
        state = jax.device_put(state, jax.local_devices()[0])
        if run.writer:
            files.truncate_jsonl(metrics_path, "epoch", start)
        progress(loop.Progress("start", "classifier", start, config.epochs, resumed=run.resumed,
                               text=f"checkpoint in {folder.checkpoint_dir}" if run.resumed else ""))
        metrics: dict = {}

        def log(upto: int | None) -> None:
            """The epoch's line in metrics.jsonl, and its progress event (nothing of a broken epoch)."""
            if upto is not None:
                return
            if run.writer:
                files.append_jsonl(metrics_path, [metrics])
            events.scalars(epoch + 1, {k: v for k, v in metrics.items() if k != "epoch"})
            events.flush()
            progress(loop.Progress("chunk", "classifier", epoch + 1, config.epochs,
                                   metrics={"loss": metrics["train_loss"],
                                            "holdout_acc": metrics["holdout_accuracy"]}))

        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            # fold_in by epoch number: a resumed run draws exactly what an unbroken one would.
            epoch_key = jax.random.fold_in(keys["train"], epoch)
            state, device_metrics = train_epoch(state, data_dev, epoch_key, config)
            metrics = {"epoch": epoch + 1, **{k: float(v) for k, v in device_metrics.items()},
                       "seconds": time.perf_counter() - began}
            run.end_chunk(step=epoch + 1, state=state,
                          metrics={k: np.asarray([v]) for k, v in metrics.items()},
                          describe=functools.partial(_describe, epoch=epoch + 1), log=log, save=True,
                          last=epoch + 1 == config.epochs,
                          where=lambda done=epoch + 1: f"saved the checkpoint of epoch {done} in "
                                                       f"{folder.checkpoint_dir}; the same command resumes "
                                                       f"from there")
    if not metrics:  # nothing left to train: report the checkpoint as it stands
        held_idx = data_dev.holdout_idx
        held = evaluate(state.params, data_dev.images[held_idx], data_dev.labels[held_idx])
        metrics = {"epoch": start, "holdout_loss": float(held["loss"]),
                   "holdout_accuracy": float(held["accuracy"])}
    return {"variables": {"params": state.params}, **metrics, "start_epoch": start,
            "num_train": len(train_idx), "num_holdout": len(holdout_idx), "workdir": folder.path,
            "checkpoint_dir": folder.checkpoint_dir}

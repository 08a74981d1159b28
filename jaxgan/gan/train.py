"""Part 2, the host loop: ``train_and_evaluate`` trains (or resumes) the GAN and writes every output.

Data flow: the uint8 image set [N, 28, 28] goes to the device once; the project's run loop
(``jaxgan.runtime.loop``) restores or initialises a ``GANState``; one jitted ``train_epoch``
(``jaxgan.gan.steps``) runs per epoch; the host reads each epoch's per-step metrics and grids
once, appends them to ``metrics.jsonl`` and ``samples/``, and checkpoints every
``checkpoint_every`` epochs; given a classifier ``Reference``, it also scores the raw and EMA
generators there (``scores.jsonl``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan.configs.base import resume_keys, to_record, with_legacy
from jaxgan.configs.gan import KIND, GANConfig, check_batch
from jaxgan.errors import UserError
from jaxgan.gan.steps import (
    METRICS,
    WEIGHTS,
    EpochConfig,
    checkpoint_tree,
    epoch_function,
    from_checkpoint,
    generate,
    grid_noise,
    init_state,
    score_generators,
    score_noise,
    scored_weights,
)
from jaxgan.models.gan import IMAGE_SHAPE
from jaxgan.plotting import gan as plots
from jaxgan.runtime import files, loop, parallel
from jaxgan.scores import NonFiniteScore, Reference, score_value


def score_line(scores: dict, *, step: int, epoch: int, num_samples: int) -> dict:
    """One scores.jsonl line: step, epoch, sample count, and ``{name}_{weights}`` per score.

    A score that is not finite is written as null, never as a number (JSON has no NaN), and named
    in the line's ``not_finite`` list.
    """
    line = {"step": step, "epoch": epoch, "num_samples": num_samples}
    bad = []
    for weights in (w for w in WEIGHTS[::-1] if w in scores):  # raw first
        for name in ("inception_score", "inception_std", "fid"):
            value = score_value(scores[weights][name])
            line[f"{name}_{weights}"] = value
            if value is None:
                bad.append(f"{name}_{weights}")
    if bad:
        line["not_finite"] = bad
    return line


def fingerprint(images: np.ndarray) -> str:
    """A short SHA-256 of the image bytes, so a resume on other data is caught."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def _validate_images(images: np.ndarray, batch_size: int) -> np.ndarray:
    """Checks the image set is uint8 [N, 28, 28] with at least one full batch."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise UserError("the GAN trains on uint8 images [N, 28, 28], not "
                        f"{images.dtype} {list(images.shape)}")
    check_batch(batch_size, images.shape[0])
    return images


def _sample_path(samples_dir: str, step: int) -> str:
    """Where the grid after ``step`` updates goes."""
    return os.path.join(samples_dir, f"step_{step:07d}.png")


def _metric_lines(metrics: dict, first_step: int, epoch: int) -> list[dict]:
    """One JSON record per step; float32 values written in their shortest exact form."""
    names = [m for m in METRICS if m in metrics]
    columns = [[float(str(v)) for v in np.asarray(metrics[m], np.float32)] for m in names]
    return [{"step": first_step + i, "epoch": epoch, **dict(zip(names, values, strict=True))}
            for i, values in enumerate(zip(*columns, strict=True))]


def default_mesh() -> Mesh:
    """Every device of every process, except on a lone CPU process: there its first device only.

    Several CPU devices of one process share its cores and memory, so splitting a batch of 64
    over them buys no arithmetic and pays for the collectives (``experiments.benchmark``: about
    a third of the one-device steps/s on two); the sweep, whose runs never talk, is where
    those devices help.
    """
    if jax.default_backend() == "cpu" and jax.process_count() == 1:
        return parallel.make_mesh(jax.devices()[:1])
    return parallel.make_mesh()


@functools.partial(jax.jit, static_argnums=2)
def _draw_grid(gen, noise: jax.Array, mode: str) -> jax.Array:
    """The grid of ``noise`` [25, latent] as the epochs draw it (``generate`` in ``mode``): [25, 784]."""
    return generate(gen, noise, mode)


def _write_epoch(metrics: dict, grids: np.ndarray, grid_steps: np.ndarray, *, first_step: int, epoch: int,
                 metrics_path: str, samples_dir: str) -> None:
    """Appends the epoch's step records to ``metrics_path`` and saves its grids into ``samples_dir``, up
    to the first step with a non-finite metric (its record and what follows are not written)."""
    bad = loop.first_non_finite(metrics)
    good = len(metrics["d_loss"]) if bad is None else bad[0][0]
    lines = _metric_lines({k: v[:good] for k, v in metrics.items()}, first_step, epoch)
    files.append_jsonl(metrics_path, lines)
    for grid, step in zip(grids, grid_steps, strict=True):
        if 0 <= step < first_step + good:  # step -1 marks an unused slot
            plots.save_grid(grid.reshape(-1, *IMAGE_SHAPE), _sample_path(samples_dir, int(step)))


def _check_images(run: loop.Run, record: dict, checkpoint_dir: str) -> None:
    """Refuses a checkpoint that was trained on other images than this run's."""
    saved = run.saved_record
    if (saved.get("num_images"), saved.get("data_sha256")) != (record["num_images"], record["data_sha256"]):
        theirs = f"{saved.get('source') or 'unknown source'}, {saved.get('num_images')} images"
        ours = f"{record['source'] or 'given array'}, {record['num_images']} images"
        raise UserError(f"the checkpoint in {checkpoint_dir} was trained on other images ({theirs}) "
                        f"than this run's ({ours})")


def train_and_evaluate(images: np.ndarray, config: GANConfig, *, workdir: str, checkpoint_dir: str,
                       source: str = "", progress: Callable[[dict], None] | None = None,
                       restart: bool = False, reference: Reference | None = None,
                       mesh: Mesh | None = None) -> dict:
    """Trains (or resumes) the GAN on uint8 images [N, 28, 28] up to ``config.epochs`` in total.

    Writes ``config.json``, ``metrics.jsonl`` (one line per step), ``samples/step_XXXXXXX.png``
    and, at the end, ``progress.png`` (grids at the start, middle and end) and ``losses.png``
    in ``workdir``; checkpoints go to ``checkpoint_dir``, and one that holds any is resumed
    from its newest that restores (damaged newer ones are set aside with a warning; when none
    restores, ``restart`` allows a fresh start). The directory is locked for the run. SIGINT or
    SIGTERM ends the run at the end of the current epoch with a checkpoint there and raises
    ``Interrupted``; a NaN or infinite metric raises ``loop.NonFinite`` without saving that epoch.
    ``progress`` gets a ``{"event": "start", ...}`` dict, then one ``{"event": "epoch", ...}``
    dict per epoch.

    With a ``reference`` (``jaxgan.classifier.restore.held_out_reference``), every scheduled
    checkpoint (each ``checkpoint_every`` epochs and the last, not one a signal forces) also
    scores the raw and EMA generators on ``reference.num_samples`` images of fixed noise: one
    line per checkpoint in ``scores.jsonl`` (cut back on resume as metrics.jsonl is), a
    ``{"event": "scores", ...}`` progress dict with the seconds it took, and ``scores.png`` at the end.

    ``mesh`` (default: ``default_mesh()``) makes training data parallel when it spans several
    devices: parameters replicated, each batch split over the devices (the batch size must be a
    multiple of their count); a one-device mesh is the plain path.

    In a multi-process run every process trains and checkpoints, and process 0 alone writes
    ``workdir`` (``parallel.is_writer``).

    Returns a summary: the final step and epoch, the last epoch's means, compile, training and
    scoring seconds, steps/s (None when nothing was left to train), and the final state.
    """
    config.validate()
    images = _validate_images(images, config.batch_size)
    num_images = images.shape[0]
    steps_per_epoch = num_images // config.batch_size
    mesh = default_mesh() if mesh is None else mesh
    if not parallel.is_parallel(mesh):
        mesh = None  # one device: the same program (and jit cache entry) as without a mesh
    elif config.batch_size % mesh.size:
        raise UserError(f"the batch size {config.batch_size} cannot be split evenly over {mesh.size} "
                        f"devices; choose a multiple of {mesh.size} or make fewer devices visible")
    record = {**to_record(config, KIND), "source": source, "num_images": num_images,
              "data_sha256": fingerprint(images), "steps_per_epoch": steps_per_epoch,
              "dropped_per_epoch": num_images % config.batch_size}
    samples_dir = os.path.join(workdir, "samples")
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    scores_path = os.path.join(workdir, "scores.jsonl")
    report = progress or (lambda info: None)

    # A checkpoint holds the state less its hyperparameters, which the record holds (see checkpoint_tree).
    abstract = checkpoint_tree(jax.eval_shape(functools.partial(init_state, config)))
    must_match = {k: record[k] for k in resume_keys(GANConfig)}
    with loop.open_run(checkpoint_dir, kind=KIND, record=record, abstract=abstract, must_match=must_match,
                       upgrade=lambda saved: with_legacy(GANConfig, saved), keep=config.keep_checkpoints,
                       restart=restart) as run:
        if run.resumed:
            _check_images(run, record, checkpoint_dir)
        state = from_checkpoint(run.state, config) if run.resumed else init_state(config)
        start_step = int(state.step)
        # Whatever the workdir holds beyond the starting point belongs to a run that is now
        # being redone: the log is cut there and later grids are drawn again.
        if run.writer:
            try:
                os.makedirs(samples_dir, exist_ok=True)
            except OSError as err:
                raise UserError(f"cannot create {samples_dir}: {err.strerror}") from None
            files.truncate_jsonl(metrics_path, "step", start_step)
            files.truncate_jsonl(scores_path, "step", start_step)
            for step, path in plots.grid_files(samples_dir):
                if step > start_step:
                    os.remove(path)
            files.write_json(os.path.join(workdir, "config.json"), record)

        noise = grid_noise(state, config.latent_dim)
        if mesh is None:
            images_dev = jax.device_put(images)  # the whole set, once, as uint8
        else:  # data parallel: all three whole on every device; the epoch splits each batch
            state, images_dev, noise = parallel.put((state, images, noise), parallel.replicated(mesh))
        start_epoch = start_step // steps_per_epoch
        report({"event": "start", "epoch": start_epoch, "epochs": config.epochs, "step": start_step,
                "resumed": run.resumed, "steps_per_epoch": steps_per_epoch})
        tick = time.perf_counter()
        if start_epoch < config.epochs:  # compiled once here; every epoch reuses it
            compiled = epoch_function(EpochConfig.of(config), mesh).lower(state, images_dev, noise).compile()
            if reference is not None:  # the scoring program too, so its first use is not slow
                noise_for_scores = score_noise(state, reference.num_samples)
                score_args = (noise_for_scores, reference.variables, reference.features)
                if mesh is not None:  # beside the replicated state, so one program sees one device set
                    score_args = parallel.put(score_args, parallel.replicated(mesh))
                scorer = score_generators.lower(state, *score_args, weights=scored_weights(state)).compile()
        compile_s = time.perf_counter() - tick

        def describe(index: tuple[int, ...], name: str, value: float) -> str:
            """Where a non-finite metric appeared: its step and epoch."""
            return f"{name} became {value} at step {first_step + index[0]} (epoch {epoch + 1})"

        train_s, score_s, last = 0.0, 0.0, {}
        for epoch in range(start_epoch, config.epochs):
            tick = time.perf_counter()
            state, metrics, grids, grid_steps = compiled(state, images_dev, noise)
            metrics, grids, grid_steps = jax.device_get((metrics, grids, grid_steps))  # the one sync
            seconds = time.perf_counter() - tick
            train_s += seconds
            first_step = epoch * steps_per_epoch + 1
            if run.writer:
                _write_epoch(metrics, grids, grid_steps, first_step=first_step, epoch=epoch + 1,
                             metrics_path=metrics_path, samples_dir=samples_dir)
            # A broken epoch's state is never saved; of two bad metrics at one step, METRICS' order picks.
            run.check_finite({k: metrics[k] for k in METRICS}, describe)
            step = int(state.step)
            signum = run.stop_signal() if epoch + 1 < config.epochs else None
            scheduled = (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
            if scheduled or signum is not None:
                run.save(step, checkpoint_tree(state))
            # Scored at scheduled checkpoints only, so an interrupted run's log equals an unbroken one's.
            if scheduled and reference is not None:
                tick = time.perf_counter()
                scores = jax.device_get(scorer(state, *score_args))
                line = score_line(scores, step=step, epoch=epoch + 1, num_samples=reference.num_samples)
                if "not_finite" in line:
                    names = ", ".join(line["not_finite"])
                    warnings.warn(f"the scores {names} at step {step} are not finite; {scores_path} records "
                                  f"them as null", NonFiniteScore, stacklevel=2)
                if run.writer:
                    files.append_jsonl(scores_path, [line])
                seconds_scoring = time.perf_counter() - tick
                score_s += seconds_scoring
                report({"event": "scores", "epoch": epoch + 1, "step": step, "seconds": seconds_scoring,
                        **line})
            if signum is not None:
                run.interrupt(signum, f"saved a checkpoint at step {step} (the end of epoch {epoch + 1}) in "
                                      f"{checkpoint_dir}; the same command resumes from there")
            last = {k: float(np.mean(metrics[k])) for k in METRICS}
            report({"event": "epoch", "epoch": epoch + 1, "epochs": config.epochs, "step": step,
                    "steps_per_s": steps_per_epoch / seconds, **last})

        final_step = int(state.step)
        # On every process (with a mesh it is a collective); as the grids of the epochs are drawn.
        final_grid = np.asarray(_draw_grid(state.gen, noise, config.grid_mode)).reshape(-1, *IMAGE_SHAPE)
        if run.writer:
            plots.save_grid(final_grid, _sample_path(samples_dir, final_step))
            plots.progress_figure(samples_dir, os.path.join(workdir, "progress.png"))
            if os.path.exists(metrics_path):
                plots.loss_figure(metrics_path, os.path.join(workdir, "losses.png"))
            if os.path.exists(scores_path):
                plots.scores_figure(scores_path, os.path.join(workdir, "scores.png"))
    trained = final_step - start_step
    return {"step": final_step, "epoch": final_step // steps_per_epoch, "resumed_from": run.start or None,
            "compile_s": compile_s, "train_s": train_s, "score_s": score_s,
            "steps_per_s": trained / train_s if train_s else None, "last_epoch": last,
            "state": state}

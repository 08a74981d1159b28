"""Part 2, the host loop: ``train_and_evaluate`` trains (or resumes) the GAN and writes every output.

Data flow: the uint8 image set [N, 28, 28] goes to the device once; the project's run loop
(``jaxgan.runtime.loop``) restores or initialises a ``GANState``; one jitted ``train_epoch``
(``jaxgan.gan.steps``) runs per epoch; the host reads each epoch's per-step metrics and grids
once, appends them to ``metrics.jsonl`` and ``samples/``, and checkpoints every
``checkpoint_every`` epochs; given a classifier ``Reference``, it also scores the raw and EMA
generators there (``scores.jsonl``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
import warnings

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan.configs.base import flag_names, resume_keys, to_record, with_legacy
from jaxgan.configs.gan import KIND, GANConfig, check_batch
from jaxgan.data.images import ImageSet
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
from jaxgan.runtime import files, loop, parallel, tensorboard
from jaxgan.runtime import workdir as workdir_lib
from jaxgan.scores import NonFiniteScore, Reference, score_text, score_value


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


def _validate_images(images: np.ndarray, batch_size: int, epochs: int) -> np.ndarray:
    """Checks the image set is uint8 [N, 28, 28] with at least one full batch, and ``epochs`` of it fit
    the int32 step counter."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise UserError("the GAN trains on uint8 images [N, 28, 28], not "
                        f"{images.dtype} {list(images.shape)}")
    check_batch(batch_size, images.shape[0], epochs)
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


EVENTS_PER_EPOCH = 100  # TensorBoard points per metric and epoch (block means)


def _log_events(events: tensorboard.Writer, metrics: dict, grids: np.ndarray, grid_steps: np.ndarray, *,
                first_step: int, means: dict, step: int) -> None:
    """One epoch into TensorBoard: its metrics as means over blocks of steps (``train/NAME``, at most
    ``EVENTS_PER_EPOCH`` points an epoch, each at its block's last step), the epoch's means
    (``epoch_mean/NAME``) and its grids (``samples``, 5x5, at the steps they show), then a flush.

    Blocks rather than every step: an event costs ~17 us, and at thousands of steps a second (an
    accelerator) ten metrics a step would slow training by half; 100 points an epoch cost ~20 ms.
    """
    count = len(metrics["d_loss"])
    stride = -(-count // EVENTS_PER_EPOCH)
    for start in range(0, count, stride):
        end = min(start + stride, count)
        events.scalars(first_step + end - 1, {f"train/{k}": np.mean(metrics[k][start:end]) for k in METRICS})
    events.scalars(step, {f"epoch_mean/{k}": v for k, v in means.items()})
    for grid, grid_step in zip(grids, grid_steps, strict=True):
        if grid_step >= 0:
            events.images(int(grid_step), {"samples": plots.grid_image(grid.reshape(-1, *IMAGE_SHAPE), 5)})
    events.flush()


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


def cut_back(samples_dir: str, metrics_path: str, scores_path: str, start_step: int) -> None:
    """A run folder made ready to go on from ``start_step``: what it holds beyond that step belongs to
    the run's own steps that are now redone, so the logs are cut there and later grids removed (they
    are drawn again)."""
    files.make_dir(samples_dir)
    files.truncate_jsonl(metrics_path, "step", start_step)
    files.truncate_jsonl(scores_path, "step", start_step)
    for step, path in plots.grid_files(samples_dir):
        if step > start_step:
            os.remove(path)


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


# How messages name the record's keys: the config's flags, and the images' identity.
NAMES = {**flag_names(GANConfig), "num_images": "number of images", "data_sha256": "image fingerprint"}


def record_of(config: GANConfig, images: np.ndarray, source: str) -> dict:
    """The run's record: its settings, and the images it trains on (their count and fingerprint)."""
    return {**to_record(config, KIND), "source": source, "num_images": int(images.shape[0]),
            "data_sha256": fingerprint(images), "steps_per_epoch": images.shape[0] // config.batch_size,
            "dropped_per_epoch": images.shape[0] % config.batch_size}


def identity(record: dict) -> dict:
    """What another run must share with this one to continue it: the settings that shape its numbers,
    and the images."""
    return {k: record[k] for k in [*resume_keys(GANConfig), "num_images", "data_sha256"]}


def check_workdir(config: GANConfig, workdir: str, *, data: ImageSet | None = None,
                  checkpoint_dir: str | None = None, restart: bool = False) -> bool:
    """The checks ``train_and_evaluate`` makes of its run folder before it writes anything (scripts call
    it before loading images, and again before compiling); without ``data`` the images are not
    compared. Whether the folder holds this run already."""
    must_match = {k: v for k, v in to_record(config, KIND).items() if k in resume_keys(GANConfig)}
    if data is not None:
        must_match = identity(record_of(config, data.images, data.source))
    return workdir_lib.check(workdir, kind=KIND, must_match=must_match, checkpoint_dir=checkpoint_dir,
                             names=NAMES, restart=restart)


def train_and_evaluate(config: GANConfig, workdir: str, *, data: ImageSet, checkpoint_dir: str | None = None,
                       restart: bool = False, progress: loop.ProgressFn = loop.ignore,
                       reference: Reference | None = None, mesh: Mesh | None = None) -> dict:
    """Trains (or resumes) the GAN on ``data.images`` (uint8 [N, 28, 28]) up to ``config.epochs`` in total.

    The run is the folder ``workdir`` (``jaxgan.runtime.workdir.claim``): ``config.json``,
    ``metrics.jsonl`` (one line per step), ``samples/step_XXXXXXX.png`` and, at the end,
    ``progress.png`` (grids at the start, middle and end) and ``losses.png``, and TensorBoard events
    while it trains (every step's metrics, epoch means, the grids, the scores); checkpoints in
    ``workdir/checkpoints`` unless ``checkpoint_dir`` says otherwise. A folder that holds this run
    resumes from its newest checkpoint that restores (damaged newer ones are set aside with a
    warning); one that holds another run, or anything else, is refused before anything is written;
    ``restart`` moves what it held aside and starts over. SIGINT or SIGTERM ends the run at the end
    of the current epoch with a checkpoint there and raises ``Interrupted``; a NaN or infinite metric
    raises ``loop.NonFinite`` without saving that epoch. ``progress`` gets ``loop.Progress`` events:
    "start", then "chunk" per epoch (and "scores" per scored checkpoint).

    With a ``reference`` (``jaxgan.classifier.restore.held_out_reference``), every scheduled
    checkpoint (each ``checkpoint_every`` epochs and the last, not one a signal forces) also
    scores the raw and EMA generators on ``reference.num_samples`` images of fixed noise: one
    line per checkpoint in ``scores.jsonl`` (cut back on resume as metrics.jsonl is) and
    ``scores.png`` at the end.

    ``mesh`` (default: ``default_mesh()``) makes training data parallel when it spans several
    devices: parameters replicated, each batch split over the devices (the batch size must be a
    multiple of their count); a one-device mesh is the plain path. In a multi-process run every
    process trains and checkpoints, and process 0 alone writes the folder's files.

    Returns a summary: the final step and epoch, the epoch it resumed from, the last epoch's means,
    compile, training and scoring seconds, steps/s (None when nothing was left to train), and the
    final ``state``.
    """
    config.validate()
    images = _validate_images(data.images, config.batch_size, config.epochs)
    steps_per_epoch = images.shape[0] // config.batch_size
    mesh = default_mesh() if mesh is None else mesh
    if not parallel.is_parallel(mesh):
        mesh = None  # one device: the same program (and jit cache entry) as without a mesh
    elif config.batch_size % mesh.size:
        raise UserError(f"the batch size {config.batch_size} cannot be split evenly over {mesh.size} "
                        f"devices; choose a multiple of {mesh.size} or make fewer devices visible")
    record = record_of(config, images, data.source)
    # A checkpoint holds the state less its hyperparameters, which the record holds (see checkpoint_tree).
    abstract = checkpoint_tree(jax.eval_shape(functools.partial(init_state, config)))
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(workdir_lib.claim(
            workdir, kind=KIND, record=record, must_match=identity(record), checkpoint_dir=checkpoint_dir,
            names=NAMES, restart=restart, log=lambda text: progress(loop.Progress(
                "message", "gan", 0, config.epochs, text=text))))
        run = stack.enter_context(loop.open_run(
            folder.checkpoint_dir, kind=KIND, record=record, abstract=abstract, must_match=identity(record),
            upgrade=lambda saved: with_legacy(GANConfig, saved), keep=config.keep_checkpoints))
        folder.commit()  # the checkpoints opened: this is the folder's run now
        events = stack.enter_context(tensorboard.open_writer(folder.path, enabled=run.writer))
        events.hparams(record, metrics=[f"epoch_mean/{k}" for k in ("d_loss", "g_loss", "d_real", "d_fake")])
        samples_dir, metrics_path = folder.file("samples"), folder.file("metrics.jsonl")
        scores_path = folder.file("scores.jsonl")
        state = from_checkpoint(run.state, config) if run.resumed else init_state(config)
        start_step = int(state.step)
        if run.writer:
            cut_back(samples_dir, metrics_path, scores_path, start_step)

        noise = grid_noise(state, config.latent_dim)
        if mesh is None:
            images_dev = jax.device_put(images)  # the whole set, once, as uint8
        else:  # data parallel: all three whole on every device; the epoch splits each batch
            state, images_dev, noise = parallel.put((state, images, noise), parallel.replicated(mesh))
        start_epoch = start_step // steps_per_epoch
        progress(loop.Progress("start", "gan", start_epoch, config.epochs, resumed=run.resumed,
                               text=f"step {start_step}, checkpoint in {folder.checkpoint_dir}"
                               if run.resumed else ""))
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

        def score(step: int) -> None:
            """Scores the state at a scheduled checkpoint into scores.jsonl, and reports it."""
            nonlocal score_s
            tick = time.perf_counter()
            scores = jax.device_get(scorer(state, *score_args))
            line = score_line(scores, step=step, epoch=epoch + 1, num_samples=reference.num_samples)
            if "not_finite" in line:
                names = ", ".join(line["not_finite"])
                warnings.warn(f"the scores {names} at step {step} are not finite; {scores_path} records "
                              f"them as null", NonFiniteScore, stacklevel=2)
            if run.writer:
                files.append_jsonl(scores_path, [line])
            events.scalars(step, {f"scores/{k}": v for k, v in line.items()
                                  if k.startswith(("inception_score_", "fid_")) and v is not None})
            seconds = time.perf_counter() - tick
            score_s += seconds
            shown = {k: v for k, v in line.items() if k.startswith(("inception_score_", "fid_"))}
            found = [f"{w}: IS {score_text(line[f'inception_score_{w}'])}, FID {score_text(line[f'fid_{w}'])}"
                     for w in ("raw", "ema") if f"fid_{w}" in line]
            progress(loop.Progress("scores", "gan", epoch + 1, config.epochs,
                                   metrics={**shown, "seconds": seconds},
                                   text=f"step {step} scores ({seconds:.1f} s): {'; '.join(found)}"))

        def log(upto: int | None) -> None:
            """The epoch's metrics and grids (the finite steps only, when ``upto`` is given), its scores
            at a scheduled checkpoint, and the progress event."""
            if run.writer:
                kept = metrics if upto is None else {k: v[:upto] for k, v in metrics.items()}
                _write_epoch(kept, grids, grid_steps, first_step=first_step, epoch=epoch + 1,
                             metrics_path=metrics_path, samples_dir=samples_dir)
            if upto is not None:
                return
            # Scored at scheduled checkpoints only, so an interrupted run's log equals an unbroken one's.
            if scheduled and reference is not None:
                score(step)
            means = {k: float(np.mean(metrics[k])) for k in METRICS}
            last.update(means)
            _log_events(events, metrics, grids, grid_steps, first_step=first_step, means=means, step=step)
            shown = {k: means[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")}
            progress(loop.Progress("chunk", "gan", epoch + 1, config.epochs,
                                   metrics={"step": step, **shown, "steps_per_s": steps_per_epoch / seconds}))

        train_s, score_s, last = 0.0, 0.0, {}
        for epoch in range(start_epoch, config.epochs):
            tick = time.perf_counter()
            state, metrics, grids, grid_steps = compiled(state, images_dev, noise)
            metrics, grids, grid_steps = jax.device_get((metrics, grids, grid_steps))  # the one sync
            metrics = {k: metrics[k] for k in METRICS}  # of two bad metrics at one step, METRICS' order picks
            seconds = time.perf_counter() - tick
            train_s += seconds
            first_step = epoch * steps_per_epoch + 1
            step = int(state.step)
            scheduled = (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
            run.end_chunk(step=step, state=checkpoint_tree(state), metrics=metrics, describe=describe,
                          log=log, save=scheduled, last=epoch + 1 == config.epochs,
                          where=lambda step=step, done=epoch + 1: (
                              f"saved a checkpoint at step {step} (the end of epoch {done}) in "
                              f"{folder.checkpoint_dir}; the same command resumes from there"))

        final_step = int(state.step)
        # On every process (with a mesh it is a collective); as the grids of the epochs are drawn.
        final_grid = np.asarray(_draw_grid(state.gen, noise, config.grid_mode)).reshape(-1, *IMAGE_SHAPE)
        if run.writer:
            plots.save_grid(final_grid, _sample_path(samples_dir, final_step))
            plots.progress_figure(samples_dir, folder.file("progress.png"))
            if os.path.exists(metrics_path):
                plots.loss_figure(metrics_path, folder.file("losses.png"))
            if os.path.exists(scores_path):
                plots.scores_figure(scores_path, folder.file("scores.png"))
    trained = final_step - start_step
    return {"step": final_step, "epoch": final_step // steps_per_epoch, "start_epoch": start_epoch,
            "resumed_from": run.start or None, "workdir": folder.path,
            "checkpoint_dir": folder.checkpoint_dir,
            "compile_s": compile_s, "train_s": train_s, "score_s": score_s,
            "steps_per_s": trained / train_s if train_s else None, "last_epoch": last,
            "state": state}

"""Part 2, many GANs in one program, each a run of its own: ``train_sweep_and_evaluate``.

A sweep is a folder (kind "gan-sweep") holding its record (``config.json``: the settings its runs
share and their names), ``summary.md``, and one sub-folder per run, named for the settings that
set it apart (``seed0``, ``lr0.0002-b10.5-seed0``). Each sub-folder is a plain GAN run folder, as
``train.train_and_evaluate`` writes one: its record, metrics.jsonl, samples/, scores.jsonl,
TensorBoard events, figures and checkpoints/, so every tool that reads a GAN run reads it.

The runs train together in one jitted program (``sweep.sweep_epoch_function``, one epoch a call)
and end every epoch in the run loop's fixed order, for each run: check finite (one bad run stops
the sweep, naming it, before anything of that epoch is saved), log, save (each run into its own
checkpoints), then one stop signal shared by all. A resume restores each run's newest good
checkpoint; runs left at different steps (a kill between their saves) all resume from the newest
step every run holds, the newer checkpoints set aside (never deleted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import time
import warnings
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan.configs.base import flag_names, resume_keys, to_record, with_legacy
from jaxgan.configs.gan import KIND, GANConfig
from jaxgan.data.images import ImageSet
from jaxgan.errors import UserError
from jaxgan.gan import sweep
from jaxgan.gan import train as one
from jaxgan.gan.steps import METRICS, checkpoint_tree, from_checkpoint, init_state, scored_weights
from jaxgan.models.gan import IMAGE_SHAPE
from jaxgan.plotting import gan as plots
from jaxgan.runtime import checkpoint, files, loop, parallel, signals, tensorboard
from jaxgan.runtime import workdir as workdir_lib
from jaxgan.scores import NonFiniteScore, Reference, score_text

SWEEP_KIND = "gan-sweep"
# The settings a sweep's grid may vary beside the seed, in the order run names and summaries show them.
GRID = ("learning_rate", "b1", "d_loss")
_SHORT = {"learning_rate": "lr", "b1": "b1", "d_loss": "dloss", "seed": "seed"}
SUMMARY = "summary.md"


def grid_configs(base: GANConfig, seeds: Sequence[int], grid: Mapping[str, Sequence] | None = None
                 ) -> list[GANConfig]:
    """Every combination of ``grid``'s values (``{field: values}``, fields of ``GRID``) and ``seeds``, the
    seeds innermost; each run's config is ``base`` with them, validated."""
    grid = {name: list(values) for name, values in (grid or {}).items() if values}
    unknown = [name for name in grid if name not in GRID]
    if unknown:
        raise ValueError(f"a sweep's grid varies {GRID} and the seed, not {unknown}")
    names = [name for name in GRID if name in grid]
    configs = []
    for values in itertools.product(*(grid[name] for name in names), seeds):
        config = dataclasses.replace(base, **dict(zip([*names, "seed"], values, strict=True)))
        config.validate()
        configs.append(config)
    return configs


def run_names(configs: Sequence[GANConfig]) -> list[str]:
    """Each run's sub-folder: the grid settings that differ between the runs, then the seed
    (``lr0.0002-b10.5-seed0``); UserError when two runs would share one."""
    varied = [name for name in GRID if len({getattr(c, name) for c in configs}) > 1]
    names = ["-".join(f"{_SHORT[name]}{getattr(c, name)}" for name in [*varied, "seed"]) for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"the sweep would train the run {twice[0]} twice; give each seed and setting once")
    return names


def sweep_record(configs: Sequence[GANConfig], images: np.ndarray, source: str) -> dict:
    """The sweep's record: the settings and images its runs share (as a run's record holds them, less the
    grid's settings and the seed), and the runs' names, which hold those."""
    shared = {k: v for k, v in one.record_of(configs[0], images, source).items()
              if k not in (*GRID, "seed", "kind")}
    return {**shared, "runs": run_names(configs)}


def sweep_identity(record: Mapping) -> dict:
    """What another sweep must share with this one to continue it: the shared settings that shape its
    numbers, the images, and the runs."""
    keys = [k for k in resume_keys(GANConfig) if k not in (*GRID, "seed")]
    return {k: record[k] for k in [*keys, "num_images", "data_sha256", "runs"]}


NAMES = {**one.NAMES, "runs": "runs"}


def check_workdir(configs: Sequence[GANConfig], workdir: str, *, data: ImageSet | None = None,
                  restart: bool = False) -> bool:
    """The checks ``train_sweep_and_evaluate`` makes of the sweep's folder and its runs' sub-folders
    before it writes anything (without ``data`` the images are not compared); whether the folder
    holds this sweep already."""
    names = run_names(configs)
    if data is None:
        keys = [k for k in resume_keys(GANConfig) if k not in (*GRID, "seed")]
        must_match = {**{k: v for k, v in to_record(configs[0]).items() if k in keys}, "runs": names}
    else:
        must_match = sweep_identity(sweep_record(configs, data.images, data.source))
    existing = workdir_lib.check(workdir, kind=SWEEP_KIND, must_match=must_match, names=NAMES,
                                 restart=restart)
    if existing:  # a run's sub-folder holds that run, or nothing yet
        for name, config in zip(names, configs, strict=True):
            one.check_workdir(config, os.path.join(workdir, name), data=data)
    return existing


def _common_start(runs: Sequence[loop.Run], abstract, records: Sequence[dict], names: Sequence[str]) -> int:
    """Brings every run to the newest step all of them hold (0: none), restoring the runs that are
    ahead from that step and setting their newer checkpoints aside; returns the step."""
    common = min(run.start if run.resumed else 0 for run in runs)
    ahead = [(run, record, name) for run, record, name in zip(runs, records, names, strict=True)
             if run.resumed and run.start > common]
    for run, _, name in ahead:
        if common and common not in run.manager.all_steps():
            raise UserError(f"the sweep's runs stopped at different steps and the run {name} no longer keeps "
                            f"a checkpoint at step {common}, where the others are; --restart starts the "
                            f"sweep over, moving its folder aside (nothing is deleted)")
    for run, record, _ in ahead:
        checkpoint.set_aside_after(run.manager, common, reason=f"the sweep resumes every run at step "
                                                               f"{common}, the newest step all of them hold")
        if common:
            run.state, run.saved_record = checkpoint.restore(
                run.manager, abstract, kind=KIND, step=common, must_match=one.identity(record),
                upgrade=lambda saved: with_legacy(GANConfig, saved))
        else:
            run.state, run.saved_record = None, None
        run.start = common
    return common


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _mean_std(row: dict, digits: int = 2) -> str:
    """``mean ± std`` of a ``sweep.summarize`` row."""
    return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"


def summary_text(configs: Sequence[GANConfig], names: Sequence[str], scores: Sequence[dict | None],
                 losses: Sequence[dict]) -> tuple[str, list[dict]]:
    """The sweep's summary (markdown) and its rows: per setting of the grid, the mean ± std over the
    seeds of FID and IS (raw and EMA) and the best run by FID, when ``scores`` (each run's last
    scores.jsonl line) are given; else of the final epoch's mean losses (``losses``)."""
    varied = [name for name in GRID if len({getattr(c, name) for c in configs}) > 1]
    settings = [tuple(getattr(c, name) for name in varied) for c in configs]
    flags = flag_names(GANConfig)
    shown = [", ".join(f"{flags[n]} {v}" for n, v in zip(varied, s, strict=True)) or "all" for s in settings]
    groups = list(dict.fromkeys(settings))
    label = {s: shown[settings.index(s)] for s in groups}
    scored = all(s is not None for s in scores)
    columns = ([f"{n}_{w}" for n in ("fid", "inception_score") for w in ("raw", "ema")
                if f"{n}_{w}" in scores[0]] if scored else ["d_loss", "g_loss"])
    per_run = scores if scored else losses
    values = {c: [run[c] for run in per_run] for c in columns}
    finite = {c: all(v is not None and np.isfinite(v) for v in vs) for c, vs in values.items()}
    rows, table = [], []
    for group in groups:
        row = {"setting": dict(zip(varied, group, strict=True)), "runs": [n for n, s in zip(names, settings,
                                                                                          strict=True)
                                                                           if s == group]}
        cells = [label[group], str(len(row["runs"]))]
        for c in columns:
            if not finite[c]:
                cells.append("not finite")
                continue
            stats = next(r for r in sweep.summarize(values[c], settings, lower_is_better=not c.startswith(
                "inception")) if r["setting"] == group)
            row[c] = {"mean": stats["mean"], "std": stats["std"], "best_run": names[stats["best_run"]],
                      "best": stats["best"]}
            cells.append(_mean_std(stats, 2 if scored else 4))
        if scored:
            key = "fid_ema" if "fid_ema" in columns else "fid_raw"
            cells.append(f"{row[key]['best_run']} ({row[key]['best']:.2f})" if key in row else "-")
        rows.append(row)
        table.append(cells)
    titles = {"fid_raw": "FID raw", "fid_ema": "FID EMA", "inception_score_raw": "IS raw",
              "inception_score_ema": "IS EMA", "d_loss": "final d_loss", "g_loss": "final g_loss"}
    headers = ["setting", "runs", *[titles[c] for c in columns]]
    if scored:
        headers.append("best run by " + ("FID EMA" if "fid_ema" in columns else "FID raw"))
    every_run = _table(["run", *[titles[c] for c in columns]],
                     [[n, *[score_text(values[c][r]) if scored else f"{values[c][r]:.4f}" for c in columns]]
                      for r, n in enumerate(names)])
    what = ("FID and IS of the last checkpoint" if scored else
            "the final epoch's mean losses (no --classifier-dir, so no scores)")
    text = (f"# GAN sweep: {len(names)} runs\n\nPer setting, mean ± std over its seeds (std with ddof 1) of "
            f"{what}.\n\n{_table(headers, table)}\n\nEvery run:\n\n{every_run}\n")
    return text, rows


def final_losses(metrics_path: str) -> dict:
    """The last epoch's mean d_loss and g_loss in a metrics.jsonl (NaN when it holds none)."""
    records = files.read_jsonl(metrics_path) if os.path.exists(metrics_path) else []
    if not records:
        return {"d_loss": float("nan"), "g_loss": float("nan")}
    last = [r for r in records if r["epoch"] == records[-1]["epoch"]]
    return {k: float(np.mean([r[k] for r in last])) for k in ("d_loss", "g_loss")}


def _sweep_mesh(count: int) -> Mesh | None:
    """This process's accelerators when there are several and they split ``count`` runs evenly, else
    None (one device). Runs never talk, so each device trains its own block of them.

    Not a CPU's several devices: they share its cores, and one GAN at batch 64 already keeps them
    busy. Measured on 2 shared cores, 4 study-sized runs on digits for 20 epochs: 16.2 steps/s of
    all 4 runs on one device, 9.5 split over two.
    """
    if jax.process_count() > 1:
        raise UserError("a sweep runs in one process; run it without the multi-process flags")
    devices = jax.local_devices()
    if jax.default_backend() != "cpu" and len(devices) > 1 and count % len(devices) == 0:
        return parallel.make_mesh(devices)
    return None


def train_sweep_and_evaluate(configs: Sequence[GANConfig], workdir: str, *, data: ImageSet,
                             restart: bool = False, progress: loop.ProgressFn = loop.ignore,
                             reference: Reference | None = None, strategy: str = "auto",
                             mesh: Mesh | None = None) -> dict:
    """Trains (or resumes) every run of ``configs`` in one program on ``data.images`` (uint8 [N, 28, 28]),
    each in its own sub-folder of ``workdir`` (see the module's docstring), up to their shared
    ``epochs``.

    The configs differ only in ``GRID`` settings and the seed (``grid_configs``). ``strategy`` is
    ``sweep.sweep_epoch``'s: "map" trains the runs in turn inside the program (each bit for bit its
    separate run), "vmap" batches them (to float rounding), "auto" picks map on CPU, vmap on
    accelerators. ``mesh`` (default: this process's accelerators when they split the runs evenly)
    gives each device its own block of runs. SIGINT or SIGTERM ends the sweep at the end of the current
    epoch with every run's checkpoint there (``Interrupted``); a non-finite metric in any run raises
    ``loop.NonFinite`` naming the run, nothing of that epoch saved. With a ``reference``, every
    scheduled checkpoint scores each run's raw and EMA generators into its scores.jsonl.

    At the end ``summary.md`` (``summary_text``) is written into ``workdir``. Returns the summary's
    text and rows, the runs' names and folders, the step and epoch, the epoch it resumed from,
    compile, training and scoring seconds, steps/s (each step trains every run) and the stacked
    ``states``.
    """
    configs = list(configs)
    try:
        epoch_config = sweep.check_sweep(configs)
    except ValueError as err:
        raise UserError(str(err)) from None
    first = configs[0]
    for name in ("epochs", "checkpoint_every", "keep_checkpoints"):
        if len({getattr(c, name) for c in configs}) > 1:
            raise UserError(f"the runs of one sweep train and save together, so they share {name}")
    images = one._validate_images(data.images, first.batch_size, first.epochs)
    steps_per_epoch = images.shape[0] // first.batch_size
    names = run_names(configs)
    count = len(configs)
    mesh = _sweep_mesh(count) if mesh is None else mesh
    record = sweep_record(configs, images, data.source)
    run_records = [one.record_of(c, images, data.source) for c in configs]
    abstract = checkpoint_tree(jax.eval_shape(functools.partial(init_state, first)))
    say = lambda text: progress(loop.Progress("message", "gan sweep", 0, first.epochs, text=text))
    with contextlib.ExitStack() as stack:
        received = stack.enter_context(signals.deferred_signals())  # one list: every run sees each signal
        top = stack.enter_context(workdir_lib.claim(workdir, kind=SWEEP_KIND, record=record,
                                                    must_match=sweep_identity(record), names=NAMES,
                                                    restart=restart, log=say, checkpoints=False))
        folders, runs = [], []
        for name, run_record in zip(names, run_records, strict=True):
            folder = stack.enter_context(workdir_lib.claim(
                top.file(name), kind=KIND, record=run_record, must_match=one.identity(run_record),
                names=one.NAMES, log=say))
            runs.append(stack.enter_context(loop.open_run(
                folder.checkpoint_dir, kind=KIND, record=run_record, abstract=abstract,
                must_match=one.identity(run_record), upgrade=lambda saved: with_legacy(GANConfig, saved),
                keep=first.keep_checkpoints, received=received, label=name)))
            folders.append(folder)
        start_step = _common_start(runs, abstract, run_records, names)
        for folder in (top, *folders):
            folder.commit()  # every run's checkpoints opened: the folders are this sweep's now
        writer = runs[0].writer
        events = [stack.enter_context(tensorboard.open_writer(f.path, enabled=writer)) for f in folders]
        for writer_, run_record in zip(events, run_records, strict=True):
            writer_.hparams(run_record, metrics=[f"epoch_mean/{k}" for k in ("d_loss", "g_loss", "d_real",
                                                                               "d_fake")])
        samples = [f.file("samples") for f in folders]
        metrics_paths = [f.file("metrics.jsonl") for f in folders]
        scores_paths = [f.file("scores.jsonl") for f in folders]
        if writer:  # as one run does: what lies beyond the starting step is redone
            for paths in zip(samples, metrics_paths, scores_paths, strict=True):
                one.cut_back(*paths, start_step)
        states = sweep.stack([from_checkpoint(run.state, c) if run.resumed else init_state(c)
                              for run, c in zip(runs, configs, strict=True)])
        noise = sweep.sweep_grid_noise(states, first.latent_dim)
        weights = scored_weights(sweep.unstack(states, 0))  # the runs share ema_decay (no grid setting)
        score_noise = None if reference is None else sweep.sweep_score_noise(states, reference.num_samples)
        states, images_dev, noise = sweep.place(states, images, noise, mesh)
        score_args = None
        if reference is not None:
            score_args = (score_noise, reference.variables, reference.features)
            if parallel.is_parallel(mesh):  # beside the runs' states: one program sees one device set
                score_args = (parallel.put(score_noise, parallel.runs(mesh)),
                              *parallel.put(score_args[1:], parallel.replicated(mesh)))
        start_epoch = start_step // steps_per_epoch
        resumed = start_step > 0
        progress(loop.Progress("start", "gan sweep", start_epoch, first.epochs, resumed=resumed,
                               text=f"step {start_step}, {count} runs in {top.path}" if resumed else ""))
        tick = time.perf_counter()
        if start_epoch < first.epochs:
            compiled = sweep.sweep_epoch_function(epoch_config, strategy, mesh).lower(
                states, images_dev, noise).compile()
            if reference is not None:
                scorer = sweep.score_sweep.lower(states, *score_args, weights=weights).compile()
        compile_s = time.perf_counter() - tick
        train_s, score_s = 0.0, 0.0

        def score(step: int, epoch: int) -> None:
            """Scores every run at a scheduled checkpoint into its scores.jsonl, and reports it."""
            nonlocal score_s
            tick = time.perf_counter()
            found = jax.device_get(scorer(states, *score_args))
            shown = []
            for r, name in enumerate(names):
                line = one.score_line({w: {k: v[r] for k, v in found[w].items()} for w in found}, step=step,
                                      epoch=epoch, num_samples=reference.num_samples)
                if "not_finite" in line:
                    warnings.warn(f"the scores {', '.join(line['not_finite'])} of the run {name} at step "
                                  f"{step} are not finite; {scores_paths[r]} records them as null",
                                  NonFiniteScore, stacklevel=2)
                if writer:
                    files.append_jsonl(scores_paths[r], [line])
                events[r].scalars(step, {f"scores/{k}": v for k, v in line.items()
                                         if k.startswith(("inception_score_", "fid_")) and v is not None})
                shown.append(f"{name} FID {'/'.join(score_text(line[f'fid_{w}']) for w in weights)}")
            seconds = time.perf_counter() - tick
            score_s += seconds
            progress(loop.Progress("scores", "gan sweep", epoch, first.epochs, metrics={"seconds": seconds},
                                   text=f"step {step} scores ({seconds:.1f} s; FID {'/'.join(weights)}): "
                                        + "; ".join(shown)))

        for epoch in range(start_epoch, first.epochs):
            tick = time.perf_counter()
            states, metrics, grids, grid_steps = compiled(states, images_dev, noise)
            metrics, grids, grid_steps = jax.device_get((metrics, grids, grid_steps))  # the one sync
            metrics = {k: metrics[k] for k in METRICS}  # each [R, steps]
            seconds = time.perf_counter() - tick
            train_s += seconds
            first_step = epoch * steps_per_epoch + 1
            step = int(states.step[0])
            last = epoch + 1 == first.epochs
            scheduled = (epoch + 1) % first.checkpoint_every == 0 or last
            own = [{k: v[r] for k, v in metrics.items()} for r in range(count)]
            # 1. check finite: every run's finite steps are logged, then the first bad run stops the sweep.
            bad = [(r, loop.first_non_finite(m)) for r, m in enumerate(own)]
            bad = [(r, found) for r, found in bad if found is not None]
            if bad:
                for r in range(count):
                    found = loop.first_non_finite(own[r])
                    upto = steps_per_epoch if found is None else found[0][0]
                    if writer:
                        one._write_epoch({k: v[:upto] for k, v in own[r].items()}, grids[r], grid_steps[r],
                                         first_step=first_step, epoch=epoch + 1,
                                         metrics_path=metrics_paths[r], samples_dir=samples[r])
                r = min(bad, key=lambda item: item[1][0][0])[0]  # the earliest step; of two, the first run
                where = f"in the run {names[r]}, {{}} became {{}} at step {{}} (epoch {epoch + 1})"
                runs[r].check_finite(own[r], lambda index, name, value, where=where, first_step=first_step:
                                     where.format(name, value, first_step + index[0]))
            # 2. log every run.
            means = [{k: float(np.mean(v)) for k, v in m.items()} for m in own]
            for r in range(count):
                if writer:
                    one._write_epoch(own[r], grids[r], grid_steps[r], first_step=first_step, epoch=epoch + 1,
                                     metrics_path=metrics_paths[r], samples_dir=samples[r])
                one._log_events(events[r], own[r], grids[r], grid_steps[r], first_step=first_step,
                                means=means[r], step=step)
            if scheduled and reference is not None:
                score(step, epoch + 1)
            shown = {k: float(np.mean([m[k] for m in means]))
                     for k in ("d_loss", "g_loss", "d_real", "d_fake")}
            progress(loop.Progress("chunk", "gan sweep", epoch + 1, first.epochs,
                                   metrics={"step": step, **shown, "steps_per_s": steps_per_epoch / seconds}))
            # 3. save every run; 4. one stop signal for all of them.
            signum = None if last else runs[0].stop_signal()
            if scheduled or signum is not None:
                for r, run in enumerate(runs):
                    run.save(step, checkpoint_tree(sweep.unstack(states, r)))
            if signum is not None:
                for run in runs[1:]:
                    run.confirm()
                runs[0].interrupt(signum, f"saved every run's checkpoint at step {step} (the end of epoch "
                                          f"{epoch + 1}) in {top.path}; the same command resumes from there")

        final_step = int(states.step[0])
        for r in range(count):
            gen, run_noise = jax.device_get((sweep.unstack(states, r).gen, noise[r]))  # onto one device
            grid = np.asarray(one._draw_grid(gen, run_noise, first.grid_mode)).reshape(-1, *IMAGE_SHAPE)
            if writer:
                plots.save_grid(grid, one._sample_path(samples[r], final_step))
                plots.progress_figure(samples[r], folders[r].file("progress.png"))
                if os.path.exists(metrics_paths[r]):
                    plots.loss_figure(metrics_paths[r], folders[r].file("losses.png"))
                if os.path.exists(scores_paths[r]):
                    plots.scores_figure(scores_paths[r], folders[r].file("scores.png"))
        last_scores = None
        if reference is not None:
            last_scores = [(files.read_jsonl(p) or [None])[-1] if os.path.exists(p) else None
                           for p in scores_paths]
        text, rows = summary_text(configs, names, last_scores or [None] * count,
                                  [final_losses(p) for p in metrics_paths])
        if writer:
            files.write_text(top.file(SUMMARY), text)
    trained = final_step - start_step
    return {"summary": text, "rows": rows, "names": names, "workdir": top.path,
            "run_dirs": [f.path for f in folders], "step": final_step, "epoch": final_step // steps_per_epoch,
            "start_epoch": start_epoch, "compile_s": compile_s, "train_s": train_s, "score_s": score_s,
            "steps_per_s": trained / train_s if train_s else None, "states": states}

"""The whole study in one call: Part 1 sweep, classifier, GAN, scores, interpolation, and REPORT.md.

``reproduce(config, workdir=...)`` claims its run folder (``jaxgan.runtime.workdir``) and runs each
stage in turn, timing it. Each training stage is a run of its own trainer in a sub-folder of the
workdir (``palindrome/``, ``classifier/``, ``gan/``, each with its checkpoints), called the same way
(``train_and_evaluate(config, folder, data=..., progress=...)``); beside them go
``interpolation.png`` (+ .json), ``scores.json`` and ``REPORT.md``. A rerun in the same workdir
continues every stage from its checkpoints; ``restart`` moves the earlier run aside and starts
over. ``jaxgan.configs.reproduce`` holds the sizes.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import time
from collections.abc import Callable

import jax
import numpy as np

from jaxgan.classifier.steps import check_split, holdout_indices
from jaxgan.classifier.train import train_and_evaluate as train_classifier
from jaxgan.configs.gan import check_batch
from jaxgan.configs.reproduce import STUDY, ReproduceConfig
from jaxgan.data.images import ImageSet, load_images
from jaxgan.errors import UserError
from jaxgan.gan import interpolate
from jaxgan.gan.generate import sample
from jaxgan.gan.steps import generator_variables, init_state, scored_weights
from jaxgan.gan.sweep import unstack
from jaxgan.gan.train_sweep import final_losses, grid_configs
from jaxgan.gan.train_sweep import train_sweep_and_evaluate as train_sweep
from jaxgan.models.classifier import predict
from jaxgan.palindrome import summary
from jaxgan.palindrome import train as palindrome
from jaxgan.plotting.gan import PIXELS, save_grid
from jaxgan.plotting.interpolation import rows_figure
from jaxgan.runtime import files, loop
from jaxgan.runtime import workdir as workdir_lib
from jaxgan.scores import (
    SCORE_SAMPLES,
    classifier_scores,
    make_reference,
    score_text,
    score_value,
    splits_for,
)

KIND = "reproduce"
# Pairs tried before the interpolation gives up on classifier-checked pairs (in the report, not silently).
_PAIR_TRIES = 4096
_SCORE_ROWS = {"raw": "trained generator (final, raw weights)",
               "ema": "trained generator (final, EMA weights)"}


def _palindrome_stage(config: ReproduceConfig, workdir: str, seed: int, progress: loop.ProgressFn) -> dict:
    """Part 1: the RNN/LSTM sweep over lengths x seeds, a run in ``workdir/palindrome``."""
    study = dataclasses.replace(config.palindrome, seed=seed)
    results = palindrome.train_and_evaluate(study, os.path.join(workdir, "palindrome"), progress=progress)
    return {"summary": summary.summary_markdown(results), "finding": summary.finding(results),
            "figures": [p for p in results["written"] if p.endswith(".png")]}


def _classifier_stage(image_set, config: ReproduceConfig, workdir: str, seed: int, dataset: str,
                      split: str, progress: loop.ProgressFn) -> dict:
    """The digit classifier on the image source, a run in ``workdir/classifier``: its variables, config,
    held-out accuracy, and the ``Reference`` every score is measured against: up to SCORE_SAMPLES of its
    held-out images (``reference_idx``, which the GAN does not train on either).
    """
    config = dataclasses.replace(config.classifier, seed=seed, dataset=dataset, split=split)
    result = train_classifier(config, os.path.join(workdir, "classifier"), data=image_set, progress=progress)
    variables = result["variables"]
    # As many held-out images as the real-vs-real row can pair with training-part images.
    train_idx, held_idx = holdout_indices(len(image_set.images), config)
    n = min(SCORE_SAMPLES, len(held_idx), len(train_idx))
    reference = make_reference(variables, image_set.images[held_idx[:n]],
                               f"{n} images of {image_set.source} that the classifier held out and the GAN "
                               f"never trained on")
    return {"variables": variables, "config": config, "summary": result, "reference": reference,
            "reference_idx": held_idx[:n], "real_comparison": image_set.images[train_idx[:n]]}


def _check_stages(image_set, config: ReproduceConfig, seed: int, dataset: str, split: str) -> None:
    """Refuses, before any stage runs, settings or images with which a stage cannot run."""
    dataclasses.replace(config.palindrome, seed=seed).validate()
    config.interpolation.validate()
    if image_set.labels is None:
        raise UserError(f"{image_set.source} has no labels; the classifier needs labelled digits")
    num_images = len(image_set.images)
    classifier = dataclasses.replace(config.classifier, seed=seed, dataset=dataset, split=split)
    classifier.validate()
    gan = _gan_config(config, num_images, seed)
    gan.validate()
    try:
        check_split(num_images, classifier)
        check_batch(gan.batch_size, num_images, gan.epochs)
    except UserError as err:
        raise UserError(f"--dataset {dataset} --split {split} gives {num_images} images, too few for the "
                        f"whole study: {err}") from None


def _gan_config(config: ReproduceConfig, num_images: int, seed: int):
    """The GAN run's config: ``config.gan`` with at least ``config.gan_min_steps`` steps on ``num_images``."""
    gan = config.gan
    steps_per_epoch = max(1, num_images // gan.batch_size)
    epochs = max(gan.epochs, math.ceil(config.gan_min_steps / steps_per_epoch))
    steps = epochs * steps_per_epoch
    # The study's grid every sample_every steps, or ~10 grids when the run is shorter than that.
    sample_every = min(gan.sample_every, max(1, steps // 10))
    return dataclasses.replace(gan, epochs=epochs, sample_every=sample_every, seed=seed,
                               checkpoint_every=max(1, epochs // 2))


def _gan_stage(images: np.ndarray, config, workdir: str, source: str, reference, seeds: int,
               progress: loop.ProgressFn) -> dict:
    """Part 2: trains the GAN over ``seeds`` seeds in one program (``config.seed`` on), a sweep in
    ``workdir/gan`` with a run folder per seed, scoring every run at each checkpoint; with a grid of real
    training images (``gan/real.png``) to judge the grids by.

    Returns each run's final raw and EMA variables (``{run: {"raw": ..., "ema": ...}}``, EMA only when it
    is kept), the runs' folders, the step, the runs' mean final losses, steps/s and the seconds spent
    scoring.
    """
    configs = grid_configs(config, range(config.seed, config.seed + seeds))
    folder = os.path.join(workdir, "gan")
    result = train_sweep(configs, folder, data=ImageSet(images=images, labels=None, source=source),
                         reference=reference, progress=progress)
    save_grid(images[:25], os.path.join(folder, "real.png"), value_range=PIXELS)  # raw uint8 pixels
    generators = {}
    for r, name in enumerate(result["names"]):
        state = unstack(result["states"], r)
        generators[name] = {weights: generator_variables(state, weights) for weights in scored_weights(state)}
    losses = [final_losses(os.path.join(path, "metrics.jsonl")) for path in result["run_dirs"]]
    return {"generators": generators, "run_dirs": dict(zip(result["names"], result["run_dirs"], strict=True)),
            "step": result["step"], "steps_per_s": result["steps_per_s"], "score_s": result["score_s"],
            "losses": {k: float(np.mean([loss[k] for loss in losses])) for k in ("d_loss", "g_loss")}}


def _score_stage(classifier: dict, generators: dict, gan_config, score_key: jax.Array) -> dict:
    """IS and FID of every run's trained generator (raw and EMA weights, on the same noise), an untrained
    one and real images, against the classifier's held-out features.

    ``rows`` holds one row per kind of images; a trained generator's row is the mean over the runs, with
    ``fid_std`` and ``inception_score_std_over_runs`` their spread (std with ddof 1; 0 for one run) and
    ``runs`` how many. ``per_run`` holds every run's own scores.
    """
    reference = classifier["reference"]
    n = reference.num_samples
    trained_key, untrained_key = jax.random.split(score_key)

    def scored(batch) -> dict:
        """The three scores of one batch of images, None (null) where not finite."""
        scores = jax.device_get(classifier_scores(reference.variables, batch, reference.features))
        return {k: score_value(v) for k, v in scores.items()}

    rows = {"real (classifier's training part) vs real held-out": scored(classifier["real_comparison"]),
            "untrained generator": scored(sample(generator_variables(init_state(gan_config)), untrained_key,
                                                 n))}
    per_run = {name: {weights: scored(sample(variables, trained_key, n))
                      for weights, variables in runs.items()} for name, runs in generators.items()}
    for weights, label in _SCORE_ROWS.items():
        runs = [scores[weights] for scores in per_run.values() if weights in scores]
        if not runs:
            continue
        if any(value is None for run in runs for value in run.values()):
            rows[label] = {k: None for k in ("inception_score", "inception_std", "fid")}
            continue
        spread = (lambda values: float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
        rows[label] = {"inception_score": float(np.mean([r["inception_score"] for r in runs])),
                       "inception_std": float(np.mean([r["inception_std"] for r in runs])),
                       "fid": float(np.mean([r["fid"] for r in runs])),
                       "inception_score_std_over_runs": spread([r["inception_score"] for r in runs]),
                       "fid_std": spread([r["fid"] for r in runs]), "runs": len(runs)}
    return {"num_samples": n, "rows": rows, "per_run": per_run}


def _interpolation_weights(scores: dict, generators: dict) -> tuple[str, str, str]:
    """Which run and weights draw the interpolation, and why: the weights with the lower mean FID (EMA on
    a tie), and of them the run with the lowest FID."""
    per_run = scores["per_run"]
    names = list(generators)
    if any("ema" not in runs for runs in generators.values()):
        weights, why = "raw", "the runs kept no EMA"
    else:
        fids = {w: scores["rows"][_SCORE_ROWS[w]]["fid"] for w in ("raw", "ema")}
        if fids["raw"] is None or fids["ema"] is None:
            best = names[0]
            return best, "ema", ("a score was not finite, so the EMA (the default of "
                                 f"experiments.interpolate) of the first run, {best}")
        weights = "ema" if fids["ema"] <= fids["raw"] else "raw"
        other = "raw" if weights == "ema" else "ema"
        why = (f"their mean FID over the runs is the lower: {fids[weights]:.2f} against {fids[other]:.2f} "
               f"for the {'raw' if other == 'raw' else 'EMA'} weights")
    best = min(names, key=lambda name: per_run[name][weights]["fid"])
    return best, weights, f"{why}; {best} is the run of lowest FID ({per_run[best][weights]['fid']:.2f})"


def _interpolation_stage(classifier: dict, gen_variables: dict, config: ReproduceConfig, workdir: str,
                         pair_key: jax.Array, step: int, weights: str, run_dir: str) -> dict:
    """Classifier-checked interpolation rows (random ones, said so, if none are found); figure + JSON."""
    variables = classifier["variables"]

    def classify_fn(images):
        """Class probabilities [B, 10] of images [B, 28, 28]."""
        return predict(variables, images)[0]

    note = ""
    settings = config.interpolation
    kwargs = {"num_pairs": settings.pairs, "num_between": settings.steps, "mode": settings.mode}
    try:
        rows = interpolate.interpolation_rows(gen_variables, pair_key, classify_fn=classify_fn,
                                              threshold=settings.threshold, max_tries=_PAIR_TRIES, **kwargs)
    except UserError as err:
        note = (f"No classifier-checked pairs: {err}. The rows below are random pairs (the study's way), "
                f"each image still titled with the classifier's call.")
        rows = interpolate.interpolation_rows(gen_variables, pair_key, **kwargs)
        flat = rows["images"].reshape(-1, 28, 28)
        rows["probs"] = np.asarray(classify_fn(flat)).reshape(*rows["images"].shape[:2], -1)
    path = os.path.join(workdir, "interpolation.png")
    checked = "classifier-checked" if rows["checked"] else "random"
    title = f"{settings.mode} interpolation, {checked} pairs, generator ({weights} weights) at step {step}"
    rows_figure(rows["images"], rows["probs"], path, title=title)
    record = interpolate.rows_json(rows, checkpoint_dir=os.path.join(run_dir, "checkpoints"),
                                     checkpoint_step=step, weights=weights, note=note)
    if not rows["checked"]:
        record["classes"] = rows["probs"].argmax(-1).tolist()
        record["confidence"] = rows["probs"].max(-1).round(6).tolist()
    files.write_json(os.path.join(workdir, "interpolation.json"), record, indent=None)
    ends = [(int(p[0].argmax()), float(p[0].max()), int(p[-1].argmax()), float(p[-1].max()))
            for p in rows["probs"]]
    return {"figure": path, "checked": rows["checked"], "note": note, "ends": ends, "weights": weights}


def identity(config: ReproduceConfig, *, dataset: str, split: str, seed: int) -> dict:
    """What another whole-study run must share with this one to continue it in the same folder."""
    return {"preset": config.name, "dataset": dataset, "split": split, "seed": seed}


_FLAGS = {"preset": "size (--quick)", "dataset": "--dataset", "split": "--split", "seed": "--seed"}


def check_workdir(config: ReproduceConfig, workdir: str, *, dataset: str, split: str, seed: int,
                  restart: bool = False) -> bool:
    """The checks ``reproduce`` makes of its folder before it writes anything; whether it holds this run."""
    return workdir_lib.check(workdir, kind=KIND, must_match=identity(config, dataset=dataset, split=split,
                                                                     seed=seed),
                             names=_FLAGS, restart=restart)


def reproduce(config: ReproduceConfig = STUDY, *, workdir: str = "runs/reproduce", dataset: str = "auto",
              split: str = "train", data_dir: str | None = None, seed: int = 0, restart: bool = False,
              log: Callable[[str], None] = print, progress: loop.ProgressFn = loop.ignore) -> dict:
    """Runs every stage of the study in the run folder ``workdir`` and writes ``workdir/REPORT.md``;
    returns what the report shows.

    Each training stage is a run of its own in a sub-folder (with its checkpoints), so a rerun
    continues every stage from where it stopped (a finished one in seconds) and ends where an
    unbroken run ends; ``restart`` moves what the folder held aside first. A folder that holds
    another run (other size, images or seed) is refused before anything is written. ``log`` gets
    one line as each stage starts and ends; ``progress`` gets every trainer's ``loop.Progress``
    events. The returned dict holds the image source, the per-stage wall seconds of this call, the
    classifier's held-out accuracy, the scores and the report's path.
    """
    seconds: dict[str, float] = {}
    root_key = jax.random.PRNGKey(seed)
    score_key, pair_key = jax.random.split(jax.random.fold_in(root_key, 1))

    def timed(name: str, fn: Callable[[], dict]) -> dict:
        """Runs one stage, logs and records its wall time."""
        log(f"[{name}] ...")
        began = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - began
        log(f"[{name}] done in {seconds[name]:.1f} s")
        return out

    # The folder and the images first, and every stage's settings checked on them: a bad --dataset, too
    # few images for a stage, or a folder that holds another run ends it before anything is written.
    check_workdir(config, workdir, dataset=dataset, split=split, seed=seed, restart=restart)
    image_set = timed("images", lambda: {"set": load_images(dataset, split=split, data_dir=data_dir)})["set"]
    images, source = image_set.images, image_set.source
    if config.max_images is not None:
        labels = None if image_set.labels is None else image_set.labels[: config.max_images]
        image_set = dataclasses.replace(image_set, images=images[: config.max_images], labels=labels)
        images = image_set.images
    _check_stages(image_set, config, seed, dataset, split)
    record = identity(config, dataset=dataset, split=split, seed=seed)
    with workdir_lib.claim(workdir, kind=KIND, record=record, must_match=record, names=_FLAGS,
                           restart=restart, log=log, checkpoints=False) as folder:
        folder.commit()
        workdir = folder.path
        part1 = timed("Part 1: palindrome sweep", lambda: _palindrome_stage(config, workdir, seed, progress))
        log(f"images: {source} ({len(images)} used)")
        classifier = timed("classifier", lambda: _classifier_stage(image_set, config, workdir, seed, dataset,
                                                                  split, progress))
        gan_images = np.delete(images, classifier["reference_idx"], axis=0)  # the FID reference stays unseen
        gan_config = _gan_config(config, len(gan_images), seed)
        gan = timed("GAN", lambda: _gan_stage(gan_images, gan_config, workdir, source,
                                              classifier["reference"], config.gan_seeds, progress))
        return _score_and_report(config, workdir=workdir, source=source, num_images=len(images), seed=seed,
                                 part1=part1, classifier=classifier, gan_config=gan_config, gan=gan,
                                 score_key=score_key, pair_key=pair_key, timed=timed, seconds=seconds)


def _score_and_report(config: ReproduceConfig, *, workdir: str, source: str, num_images: int, seed: int,
                      part1: dict, classifier: dict, gan_config, gan: dict, score_key: jax.Array,
                      pair_key: jax.Array, timed: Callable, seconds: dict[str, float]) -> dict:
    """The stages after training: the final scores, the interpolation, and REPORT.md."""
    scores = timed("scores", lambda: _score_stage(classifier, gan["generators"], gan_config, score_key))
    files.write_json(os.path.join(workdir, "scores.json"), scores)
    run, weights, why = _interpolation_weights(scores, gan["generators"])
    interp = timed("interpolation", lambda: _interpolation_stage(
        classifier, gan["generators"][run][weights], config, workdir, pair_key, gan["step"], weights,
        gan["run_dirs"][run]))
    interp["why"], interp["run"] = why, run
    report = _markdown(config, workdir=workdir, source=source, num_images=num_images, seed=seed,
                       part1=part1, classifier=classifier, gan_config=gan_config, gan=gan, scores=scores,
                       interp=interp, seconds=seconds)
    report_path = os.path.join(workdir, "REPORT.md")
    files.write_text(report_path, report)
    return {"source": source, "seconds": seconds,
            "holdout_accuracy": classifier["summary"]["holdout_accuracy"], "scores": scores,
            "report": report_path, "interpolation_checked": interp["checked"], "finding": part1["finding"]}


def _link(workdir: str, path: str) -> str:
    """A path relative to the report, for a markdown link."""
    return os.path.relpath(path, workdir).replace(os.sep, "/")


def _markdown(config: ReproduceConfig, *, workdir: str, source: str, num_images: int, seed: int, part1: dict,
              classifier: dict, gan_config, gan: dict, scores: dict, interp: dict,
              seconds: dict[str, float]) -> str:
    """REPORT.md's text."""
    s, p = config.interpolation, config.palindrome
    lines = ["# jaxgan: reproduction report", "",
             f"Written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by "
             f"`python -m experiments.reproduce` on {jax.default_backend()} "
             f"({jax.devices()[0].device_kind}), seed {seed}.", ""]
    if config.name != "study":
        lines += [f"**{config.name.capitalize()} mode: every stage is shrunk, so these numbers are not the "
                  f"study's.** Palindrome lengths {', '.join(map(str, p.lengths))}, {p.num_seeds} seed(s), "
                  f"{p.epochs} epochs, hidden {p.hidden}; classifier "
                  f"{config.classifier.epochs} epoch(s); GAN {gan_config.epochs} epoch(s)"
                  + (f"; first {config.max_images} images only" if config.max_images else "") + ".", ""]
    lines += [f"**Image source:** {source}; {num_images} images used.", ""]

    lines += ["## Part 1: LSTM vs RNN on palindromes", "",
              f"The study's question: which model still learns to predict the last digit of a palindrome "
              f"as the sequences get longer? {len(p.lengths)} input length(s), {p.num_seeds} seed(s), "
              f"{p.epochs} epochs, hidden {p.hidden}.", "",
              f"**Finding:** {part1['finding']}", "", part1["summary"]]
    for figure in sorted(part1["figures"], key=lambda f: not f.endswith("final_accuracy.png")):
        name = os.path.basename(figure)
        lines += [f"![{name}]({_link(workdir, figure)})", ""]

    summary = classifier["summary"]
    lines += ["## Digit classifier", "",
              f"Trained {summary['epoch']} epoch(s) on {summary['num_train']} images of the source, held out "
              f"{summary['num_holdout']}: held-out accuracy **{100 * summary['holdout_accuracy']:.2f}%**. "
              "It judges the GAN's samples below. Metrics per epoch: "
              "[classifier/metrics.jsonl](classifier/metrics.jsonl).", ""]

    runs = list(gan["generators"])
    best = interp["run"]
    shown = os.path.relpath(gan["run_dirs"][best], workdir).replace(os.sep, "/")
    speed = (f", {gan['steps_per_s']:.0f} steps/s of all {len(runs)} runs together" if gan["steps_per_s"]
             else "")
    losses = gan["losses"]
    lines += ["## Part 2: GAN training", "",
              f"{len(runs)} GANs, seeds {gan_config.seed} to {gan_config.seed + len(runs) - 1}, trained in "
              f"one program (one folder each in `gan/`): {gan_config.epochs} epoch(s), {gan['step']} steps "
              f"of batch {gan_config.batch_size} on {num_images - scores['num_samples']} images (all but the "
              f"{scores['num_samples']} kept for the scores), Adam lr {gan_config.learning_rate} (b1 "
              f"{gan_config.b1}), generator layers {list(gan_config.gen_features)}, EMA of the generator's "
              f"weights with decay {gan_config.ema_decay} (warmed up: min(decay, n / (n + 9)) at step n)"
              f"{speed}. Final epoch's losses, mean over the runs: D {losses['d_loss']:.3f}, G "
              f"{losses['g_loss']:.3f}. Per-run table: [gan/summary.md](gan/summary.md).", "",
              f"Samples of one fixed noise tensor at the start, middle and end of training of the run the "
              f"interpolation below draws from ({best}), and real training images to judge them by:", "",
              f"![GAN progress]({shown}/progress.png) ![real training images](gan/real.png)", "",
              f"![GAN losses]({shown}/losses.png)", ""]

    n = scores["num_samples"]
    splits = splits_for(n)
    lines += ["## Quality scores", "",
              f"From the project's classifier: the Inception Score ({splits} split(s) of {n // splits} "
              f"images) and the Fréchet distance of its penultimate features, {n} images each, against the "
              f"reference set: {classifier['reference'].source}. Higher IS and lower FID are better; the "
              f"first row is what real images score. A trained generator's row is the mean ± std over the "
              f"{len(runs)} runs (std with ddof 1): GAN scores vary widely between seeds.", "",
              "| images | Inception Score | FID |", "|---|---|---|"]
    for label, row in scores["rows"].items():
        if "runs" in row:
            spread = score_text(row["inception_score_std_over_runs"])
            score = f"{score_text(row['inception_score'])} ± {spread}"
            fid = f"{score_text(row['fid'])} ± {score_text(row['fid_std'])}"
            lines.append(f"| {label}, mean ± std over {row['runs']} runs | {score} | {fid} |")
        else:
            score, spread, fid = (score_text(row[k]) for k in ("inception_score", "inception_std", "fid"))
            lines.append(f"| {label} | {score} ± {spread} (over splits) | {fid} |")
    lines += ["", "Every run's own scores (the same noise for all):", "", "| run | weights | IS | FID |",
              "|---|---|---|---|"]
    for name, per_weights in scores["per_run"].items():
        for weights, row in per_weights.items():
            lines.append(f"| {name} | {weights} | {score_text(row['inception_score'])} | "
                         f"{score_text(row['fid'])} |")
    lines += ["", "Per-row numbers: [scores.json](scores.json). The raw weights are the generator as "
              "trained; the EMA weights are the exponential moving average of them kept during training "
              "(with its own BatchNorm statistics).", ""]
    figure = os.path.join(gan["run_dirs"][best], "scores.png")
    if os.path.exists(figure):
        lines += [f"The same scores at every checkpoint during training of {best}, on {n} samples of one "
                  f"fixed noise tensor ({gan['score_s']:.1f} s of scoring all runs in this call; "
                  f"[{shown}/scores.jsonl]({shown}/scores.jsonl)):", "",
                  f"![Scores over training]({_link(workdir, figure)})", ""]

    how = (f"pairs whose two ends the classifier calls different classes, each with confidence "
           f">= {s.threshold}" if interp["checked"] else "random pairs")
    lines += ["## Interpolation", "",
              f"{s.pairs} rows of {s.steps + 2} images ({s.mode}) from the {interp['weights']} weights of "
              f"{interp['run']}, chosen because {interp['why']}: {how}; each image is titled with the "
              "classifier's class and confidence. Latents: [interpolation.json](interpolation.json).", ""]
    if interp["note"]:
        lines += [interp["note"], ""]
    lines += [f"![interpolation]({_link(workdir, interp['figure'])})", "", "## Wall time", "",
              "This call's seconds per stage (a stage resumed from its checkpoints counts only what was left "
              "to do).", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in seconds.items()]
    lines += [f"| total | {sum(seconds.values()):.1f} |", ""]
    return "\n".join(lines)

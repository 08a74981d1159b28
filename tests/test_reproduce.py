"""experiments.reproduce end to end on tiny settings: every stage runs and REPORT.md shows all of it.

One run on 320 scikit-learn digits with the hidden --tiny sizes (palindrome lengths 3 and 4, one
seed, two epochs; one-epoch classifier and GAN with small layers), shared by the tests below. It is
made the way a user's Ctrl-C makes it: the first call gets SIGINT between the two Part 1 sweeps,
the same command then continues it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import signal

import numpy as np
import pytest

from experiments import _cli
from experiments import reproduce as cli
from jaxgan.configs.reproduce import TINY
from jaxgan.palindrome import train as palindrome_train

SECTIONS = ("## Part 1: LSTM vs RNN on palindromes", "## Digit classifier", "## Part 2: GAN training",
            "## Quality scores", "## Interpolation", "## Wall time")
STAGES = ("images", "Part 1: palindrome sweep", "classifier", "GAN", "scores", "interpolation")


def _captured(argv: list[str]) -> tuple[int, str]:
    """``python -m experiments.reproduce ARGV`` in this process: (exit status, stdout + stderr)."""
    output = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            _cli.run(cli.main, argv)
        except SystemExit as stop:
            code = stop.code
    return code, output.getvalue()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(workdir, the first call's exit, output and whether it left a report, the second call's output):
    Ctrl-C, then the same command."""
    directory = tmp_path_factory.mktemp("reproduce")
    argv = ["--tiny", "--dataset", "digits", "--workdir", str(directory)]
    real = palindrome_train.sweep_chunks

    def chunks(runs, data, config, epochs, **kwargs):
        """The real chunks; Ctrl-C (a real SIGINT to this process) when the RNN sweep ends."""
        for done, trained, metrics in real(runs, data, config, epochs, **kwargs):
            if config.model == "rnn" and done == epochs:
                os.kill(os.getpid(), signal.SIGINT)
            yield done, trained, metrics

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(palindrome_train, "sweep_chunks", chunks)
        first = (*_captured(argv), (directory / "REPORT.md").exists())
    code, second = _captured(argv)
    assert code == 0, second
    return directory, first, second


@pytest.fixture(scope="module")
def workdir(chain):
    """The workdir of the tiny run, finished by the second call."""
    return chain[0]


def test_ctrl_c_stops_with_one_line_and_the_same_command_continues(chain):
    """SIGINT: exit 130, one line saying where it saved; the rerun skips the finished RNN sweep, trains
    the LSTM's, and Part 1 ends exactly as a run that was never interrupted."""
    directory, (code, first, reported), second = chain
    assert code == 130, first
    lines = [line for line in first.splitlines() if line.startswith(("stopped:", "error:", "Traceback"))]
    where = directory / "palindrome" / "checkpoints" / "rnn-scalar"
    assert lines == [f"stopped: SIGINT received: saved rnn/scalar at epoch 2 in {where}; the same command "
                     f"resumes from there"]
    assert not reported
    assert f"rnn/scalar: resuming at epoch 2 of 2 (checkpoint in {where})" in second
    straight = palindrome_train.train(dataclasses.replace(TINY.palindrome, seed=0), None)
    resumed = json.loads((directory / "palindrome" / "results.json").read_text())
    assert resumed["runs"] == straight["runs"]


def test_restart_moves_the_earlier_run_aside_and_keeps_every_byte(tmp_path, monkeypatch):
    """--restart moves what the folder held (here an earlier version's whole-study folder) to a sibling
    named for the moment, after the input is checked; a folder of other files is refused even so."""
    folder = tmp_path / "run"
    (folder / "checkpoints" / "gan").mkdir(parents=True)
    (folder / "REPORT.md").write_text("an earlier report")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C arrived as Part 1 began

    from jaxgan import reproduce as library

    monkeypatch.setattr(library, "_palindrome_stage", stop)
    code, _ = _captured(["--tiny", "--dataset", "digits", "--workdir", str(folder), "--restart"])
    assert code == 130
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(moved) == 1 and (moved[0] / "REPORT.md").read_text() == "an earlier report"
    assert (moved[0] / "checkpoints" / "gan").is_dir()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".lock")) == ["config.json"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    code, output = _captured(["--tiny", "--dataset", "digits", "--workdir", str(mine), "--restart"])
    assert code == 2 and "is not a jaxgan run folder" in output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_report_has_every_section_and_every_linked_file_exists(workdir):
    """All sections, the tiny-mode warning, the image source; every link points at a written file."""
    report = (workdir / "REPORT.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    assert "Tiny mode" in report and "not the study's" in report
    assert "**Image source:** digits (scikit-learn" in report
    links = re.findall(r"\]\(([^)]+)\)", report)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    run = json.loads((workdir / "interpolation.json").read_text())["checkpoint_dir"].split("/")[-2]
    assert run in ("seed0", "seed1")  # the GAN's runs: one folder per seed, the figures of the drawn one
    assert {f"gan/{run}/progress.png", f"gan/{run}/losses.png", f"gan/{run}/scores.png", "gan/real.png",
            "interpolation.png", "palindrome/final_accuracy.png", "palindrome/curves_T3_scalar.png",
            "palindrome/curves_T4_scalar.png"} <= set(figures)
    # The score curve sits in the quality-scores section.
    quality = report[report.index("## Quality scores"):report.index("## Interpolation")]
    assert f"![Scores over training](gan/{run}/scores.png)" in quality
    for link in links:
        assert (workdir / link).is_file(), link


def test_the_real_images_are_drawn_as_they_are(workdir):
    """gan/real.png shows training digits with their own grey levels (raw 0..255 pixels, not the
    generator's [-1, 1], which drew white silhouettes on grey): its first tile is one of the run's
    images exactly, each pixel a 3x3 block after a 2-pixel white border."""
    from jaxgan.data.images import load_images
    from jaxgan.plotting.canvas import image_module

    images = load_images("digits").images[:TINY.max_images] / 255.0
    png = image_module().imread(str(workdir / "gan" / "real.png"))[..., :3].mean(-1)
    tile = png[6:6 + 3 * 28:3, 6:6 + 3 * 28:3]  # the border scaled by 3, then one pixel per block
    assert np.abs(tile - images).max(axis=(1, 2)).min() <= 1 / 255
    assert tile.min() == 0.0  # a black background, not the grey of 0 read as [-1, 1]


def test_report_tables_hold_both_models_all_scores_and_stage_times(workdir):
    """RNN and LSTM rows per length, four finite score rows (raw and EMA generators, each the mean ± std
    over the GAN's two runs, which the per-run scores confirm), one time per stage."""
    report = (workdir / "REPORT.md").read_text()
    assert re.search(r"\| rnn \| scalar \| [01]\.\d+ \| [01]\.\d+ \|", report)  # one seed: no ±
    assert re.search(r"\| lstm \| scalar \| [01]\.\d+ \| [01]\.\d+ \|", report)
    scores = json.loads((workdir / "scores.json").read_text())
    assert list(scores["rows"]) == ["real (classifier's training part) vs real held-out",
                                    "untrained generator", "trained generator (final, raw weights)",
                                    "trained generator (final, EMA weights)"]
    assert scores["num_samples"] == 64
    for label, row in scores["rows"].items():
        assert all(math.isfinite(v) for v in row.values())
        assert 1.0 - 1e-4 <= row["inception_score"] <= 10.0 and row["fid"] >= 0.0
        shown = re.escape(label) + (r", mean ± std over 2 runs" if "runs" in row else "")
        assert re.search(rf"\| {shown} \| \d+\.\d\d ± \d+\.\d\d.* \| \d+\.\d\d", report), label
    # Each trained row is the mean and spread of the two runs' own scores.
    per_run = scores["per_run"]
    assert sorted(per_run) == ["seed0", "seed1"]
    for weights, label in (("raw", "raw weights"), ("ema", "EMA weights")):
        row = scores["rows"][f"trained generator (final, {label})"]
        fids = [per_run[run][weights]["fid"] for run in ("seed0", "seed1")]
        assert row["runs"] == 2 and row["fid"] == pytest.approx(np.mean(fids))
        assert row["fid_std"] == pytest.approx(np.std(fids, ddof=1))
    # The raw and EMA generators are different networks, so their scores differ.
    raw, ema = (scores["rows"][f"trained generator (final, {w} weights)"] for w in ("raw", "EMA"))
    assert raw != ema
    # Scores during training: the one-epoch GAN checkpoints once, so one line per run, at its last step,
    # with finite raw and EMA scores of as many samples as the final table uses.
    for run in ("seed0", "seed1"):
        text = (workdir / "gan" / run / "scores.jsonl").read_text()
        lines = [json.loads(line) for line in text.splitlines()]
        # The GAN trains on the 320 images less the 64 the scores compare with: 4 steps of 64.
        assert len(lines) == 1 and lines[0]["step"] == 4 and lines[0]["num_samples"] == 64
        for name in ("inception_score", "inception_std", "fid"):
            assert math.isfinite(lines[0][f"{name}_raw"]) and math.isfinite(lines[0][f"{name}_ema"])
    assert json.loads((workdir / "gan" / "config.json").read_text())["num_images"] == 256
    # The interpolation uses the weights of the lower mean FID, from the run of lowest FID with them.
    better = "ema" if ema["fid"] <= raw["fid"] else "raw"
    best = min(per_run, key=lambda run: per_run[run][better]["fid"])
    interpolation = json.loads((workdir / "interpolation.json").read_text())
    assert interpolation["weights"] == better
    assert interpolation["checkpoint_dir"].endswith(f"gan/{best}/checkpoints")
    assert (f"from the {better} weights of {best}, chosen because their mean FID over the runs is the "
            f"lower") in report
    for stage in STAGES:
        assert re.search(rf"\| {re.escape(stage)} \| \d+\.\d \|", report), stage
    interpolation = json.loads((workdir / "interpolation.json").read_text())
    assert len(interpolation["latents"]) == 2 and len(interpolation["latents"][0]) == 5
    assert len(interpolation["classes"]) == 2


def test_each_stage_is_a_run_folder_inside_the_workdir(workdir):
    """The palindrome study, the classifier and the GAN are each a run folder of their own, with their
    checkpoints, inside the whole study's folder, which records the run."""
    stages = {p.name for p in workdir.iterdir() if p.is_dir()}
    assert stages == {"classifier", "gan", "palindrome"}
    assert json.loads((workdir / "config.json").read_text()) == {
        "preset": "tiny", "dataset": "digits", "split": "train", "seed": 0, "kind": "reproduce"}
    for stage in ("palindrome", "classifier", "gan/seed0", "gan/seed1"):  # the GAN's: a run folder per seed
        record = json.loads((workdir / stage / "config.json").read_text())
        assert record["checkpoint_dir"] == "checkpoints" and (workdir / stage / "checkpoints").is_dir()
    assert json.loads((workdir / "gan" / "config.json").read_text())["runs"] == ["seed0", "seed1"]


def test_a_bad_dataset_is_one_sentence_before_anything_runs(tmp_path, capsys):
    """A missing IDX folder: exit 2, one line, and no report."""
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(cli.main, ["--tiny", "--dataset", f"idx:{tmp_path / 'missing'}", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error:") and "\n" not in err, err
    assert not (tmp_path / "REPORT.md").exists()


def test_the_device_check_reads_the_studys_report(workdir, tmp_path):
    """What benchmarks.device_check keeps of its study step (a reproduce run in OUT/study): the wall
    time of each stage and the scores, read from this module's run."""
    from benchmarks import device_check

    (tmp_path / "study").symlink_to(workdir, target_is_directory=True)
    kept = device_check._results("study", str(tmp_path))
    assert kept["wall_time"].startswith("## Wall time")
    for stage in STAGES:
        assert f"| {stage} |" in kept["wall_time"]
    assert kept["scores"] == json.loads((workdir / "scores.json").read_text())
    assert device_check._results("study", str(tmp_path / "nothing")) == {}

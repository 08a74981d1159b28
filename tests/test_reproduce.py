"""experiments.reproduce end to end on tiny settings: every stage runs and REPORT.md shows all of it.

One run on 320 scikit-learn digits with the hidden --tiny sizes (palindrome lengths 3 and 4, one
seed, two epochs; one-epoch classifier and GAN with small layers), shared by the tests below.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from experiments import _cli
from experiments import reproduce as cli

SECTIONS = ("## Part 1: LSTM vs RNN on palindromes", "## Digit classifier", "## Part 2: GAN training",
            "## Quality scores", "## Interpolation", "## Wall time")
STAGES = ("images", "Part 1: palindrome sweep", "classifier", "GAN", "scores", "interpolation")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The workdir of one tiny run of the command."""
    directory = tmp_path_factory.mktemp("reproduce")
    cli.main(["--tiny", "--dataset", "digits", "--workdir", str(directory)])
    return directory


def test_report_has_every_section_and_every_linked_file_exists(workdir):
    """All sections, the tiny-mode warning, the image source; every link points at a written file."""
    report = (workdir / "REPORT.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    assert "Tiny mode" in report and "not the study's" in report
    assert "**Image source:** digits (scikit-learn" in report
    links = re.findall(r"\]\(([^)]+)\)", report)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"gan/progress.png", "gan/losses.png", "gan/scores.png", "interpolation.png",
            "palindrome/final_accuracy.png", "palindrome/curves_T3_scalar.png",
            "palindrome/curves_T4_scalar.png"} <= set(figures)
    # The score curve sits in the quality-scores section.
    quality = report[report.index("## Quality scores"):report.index("## Interpolation")]
    assert "![Scores over training](gan/scores.png)" in quality
    for link in links:
        assert (workdir / link).is_file(), link


def test_report_tables_hold_both_models_all_scores_and_stage_times(workdir):
    """RNN and LSTM rows per length, four finite score rows (raw and EMA generators), one time per stage."""
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
        assert re.search(rf"\| {re.escape(label)} \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d \|", report), label
    # The raw and EMA generators are different networks, so their scores differ.
    raw, ema = (scores["rows"][f"trained generator (final, {w} weights)"] for w in ("raw", "EMA"))
    assert raw != ema
    # Scores during training: the one-epoch GAN checkpoints once, so one line, at its last step,
    # with finite raw and EMA scores of as many samples as the final table uses.
    lines = [json.loads(line) for line in (workdir / "gan" / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["step"] == 5 and lines[0]["num_samples"] == 64
    for name in ("inception_score", "inception_std", "fid"):
        assert math.isfinite(lines[0][f"{name}_raw"]) and math.isfinite(lines[0][f"{name}_ema"])
    # The interpolation uses the EMA weights, and its record says so.
    assert json.loads((workdir / "interpolation.json").read_text())["weights"] == "ema"
    for stage in STAGES:
        assert re.search(rf"\| {re.escape(stage)} \| \d+\.\d \|", report), stage
    interpolation = json.loads((workdir / "interpolation.json").read_text())
    assert len(interpolation["latents"]) == 2 and len(interpolation["latents"][0]) == 5
    assert len(interpolation["classes"]) == 2


def test_checkpoints_stay_inside_the_workdir(workdir):
    """The classifier, GAN and palindrome checkpoints are all under workdir/checkpoints."""
    assert {p.name for p in (workdir / "checkpoints").iterdir()} == {"classifier", "gan", "palindrome"}


def test_a_bad_dataset_is_one_sentence_before_anything_runs(tmp_path, capsys):
    """A missing IDX folder: exit 2, one line, and no report."""
    with pytest.raises(SystemExit) as exit_info:
        _cli.run(cli.main, ["--tiny", "--dataset", f"idx:{tmp_path / 'missing'}", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error:") and "\n" not in err, err
    assert not (tmp_path / "REPORT.md").exists()

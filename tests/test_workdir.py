"""One run, one folder: a run owns its workdir, refuses another run's, moves it aside on --restart, and
its outputs are checked before any work.

Every case runs the real command lines (in this process, ``_cli.run``) on the smallest settings: a GAN
of one or two epochs on 128 scikit-learn digits (2 steps an epoch), a palindrome study of two epochs
at T = 3, a one-epoch classifier. A refused command must exit 2 with one ``error:`` line and leave every
byte of the folders it was pointed at as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest
from script_runs import run_script

from experiments import _cli, interpolate, palindrome, sample, train_classifier, train_gan
from jaxgan.errors import UserError
from jaxgan.runtime import files, workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]
GAN = ["--dataset", "digits", "--limit-images", "128", "--epochs", "1", "--sample-every", "1"]
STUDY = ["--lengths", "3", "--seeds", "1", "--epochs", "2", "--hidden", "8", "--num-examples", "64",
         "--batch-size", "16", "--models", "rnn"]
CLASSIFIER = ["--dataset", "digits", "--epochs", "1"]


_cli_run = run_script  # (exit status, stdout, stderr) of a script run in this process


def _ran(main, argv: list[str]) -> str:
    """Runs a command that must succeed; returns what it printed (stdout and stderr)."""
    code, out, err = _cli_run(main, argv)
    assert code == 0, err
    return out + err


def _snapshot(*folders: pathlib.Path) -> dict[str, str]:
    """Every file under ``folders`` (lock files aside: they stay, empty) -> the SHA-256 of its bytes."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith(".lock"):
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _refused(main, argv: list[str], *expected: str) -> str:
    """Runs a command that must be refused: exit 2, one ``error:`` line holding each of ``expected``."""
    code, _, err = _cli_run(main, argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> pathlib.Path:
    """A finished one-epoch GAN run in its default layout: WORKDIR/checkpoints."""
    folder = tmp_path_factory.mktemp("gan") / "run"
    _ran(train_gan.main, [*GAN, "--workdir", str(folder)])
    return folder


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> pathlib.Path:
    """A finished tiny palindrome study in its default layout."""
    folder = tmp_path_factory.mktemp("study") / "run"
    _ran(palindrome.main, [*STUDY, "--workdir", str(folder)])
    return folder


def test_a_run_keeps_everything_in_its_folder_and_records_where(gan_run):
    """The record, the logs, the grids and the checkpoints are all in the workdir."""
    record = json.loads((gan_run / "config.json").read_text())
    assert record["kind"] == "gan" and record["checkpoint_dir"] == "checkpoints"
    assert (gan_run / "metrics.jsonl").is_file() and list((gan_run / "samples").glob("step_*.png"))
    assert [p.name for p in (gan_run / "checkpoints").iterdir() if p.name.isdigit()] == ["2"]


def test_another_run_in_an_earlier_runs_folder_is_refused_and_changes_nothing(gan_run, tmp_path):
    """The case that wiped a log: other settings and checkpoints elsewhere, in the same workdir."""
    before = _snapshot(gan_run)
    _refused(train_gan.main, [*GAN, "--lr", "1e-3", "--workdir", str(gan_run),
                              "--checkpoint-dir", str(tmp_path / "other")],
             f"{gan_run} holds another GAN run (--lr 0.0002 there, 0.001 here)", "--restart", "--workdir")
    _refused(train_gan.main, [*GAN, "--limit-images", "192", "--workdir", str(gan_run)],
             "number of images 128 there, 192 here")
    _refused(train_gan.main, [*GAN, "--workdir", str(gan_run), "--checkpoint-dir", str(tmp_path / "other")],
             f"keeps its checkpoints in {gan_run / 'checkpoints'}")
    assert _snapshot(gan_run) == before
    assert not (tmp_path / "other").exists()


def test_the_same_run_resumes_in_its_folder(gan_run, tmp_path):
    """A copy of the finished run, asked for one more epoch, continues from its checkpoint."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(gan_run, copy)
    record = json.loads((copy / "config.json").read_text())
    printed = _ran(train_gan.main, [*GAN, "--epochs", "2", "--workdir", str(copy)])
    assert "resuming at epoch 1 of 2" in printed
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((copy / "config.json").read_text()) == {**record, "epochs": 2}


@pytest.mark.parametrize("case", ["gan-in-study", "classifier-in-gan", "study-in-gan"])
def test_a_folder_of_another_experiment_is_refused_by_every_trainer(case, gan_run, study_run):
    """Every trainer refuses a workdir that holds another experiment's run, naming both kinds."""
    main, flags, folder, held, ours = {
        "gan-in-study": (train_gan.main, GAN, study_run, "palindrome study", "GAN"),
        "classifier-in-gan": (train_classifier.main, CLASSIFIER, gan_run, "GAN", "classifier"),
        "study-in-gan": (palindrome.main, STUDY, gan_run, "GAN", "palindrome study"),
    }[case]
    before = _snapshot(folder)
    _refused(main, [*flags, "--workdir", str(folder)], f"holds a {held} run, not a {ours} one")
    assert _snapshot(folder) == before


def test_a_trainer_refuses_another_runs_checkpoints_and_a_folder_of_checkpoint_folders(gan_run, study_run,
                                                                                      tmp_path):
    """Checkpoints of another run folder, another kind, or a folder of sweeps: refused, nothing written."""
    before = _snapshot(gan_run, study_run)
    _refused(train_gan.main, [*GAN, "--workdir", str(tmp_path / "a"),
                              "--checkpoint-dir", str(study_run / "checkpoints")],
             f"belongs to the run in {study_run}")
    _refused(train_classifier.main, [*CLASSIFIER, "--workdir", str(tmp_path / "b"),
                                     "--checkpoint-dir", str(gan_run / "checkpoints")],
             f"belongs to the run in {gan_run}")
    # The layout of an earlier version: a folder of sweep folders with no run folder around it.
    loose = tmp_path / "loose"
    (loose / "rnn-scalar").parent.mkdir()
    os.symlink(study_run / "checkpoints" / "rnn-scalar", loose / "rnn-scalar")
    _refused(train_gan.main, [*GAN, "--workdir", str(tmp_path / "c"), "--checkpoint-dir", str(loose)],
             "holds the checkpoint directories rnn-scalar")
    _refused(palindrome.main, [*STUDY, "--workdir", str(tmp_path / "d"),
                               "--checkpoint-dir", str(gan_run / "checkpoints")],
             f"belongs to the run in {gan_run}")
    assert _snapshot(gan_run, study_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loose"]


def test_a_folder_of_other_files_is_refused_even_with_restart(tmp_path):
    """jaxgan never writes into, or moves, a folder it did not write."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for flags in ([], ["--restart"]):
        _refused(train_gan.main, [*GAN, "--workdir", str(folder), *flags], "is not a jaxgan run folder")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_restart_moves_the_earlier_run_aside_and_starts_over(study_run, tmp_path):
    """--restart: every byte of the earlier run is kept in WORKDIR.replaced-<time>, the run starts at 0."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(study_run, folder)
    before = {path.replace(str(folder), ""): digest for path, digest in _snapshot(folder).items()}
    printed = _ran(palindrome.main, [*STUDY, "--hidden", "4", "--workdir", str(folder), "--restart"])
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(moved) == 1 and f"moved the earlier contents of {folder} to {moved[0]}" in printed
    assert {path.replace(str(moved[0]), ""): digest for path, digest in _snapshot(moved[0]).items()} == before
    assert json.loads((folder / "config.json").read_text())["hidden"] == 4
    assert "resuming" not in printed


def test_a_run_folder_of_an_earlier_version_asks_for_its_checkpoints(gan_run, tmp_path):
    """A workdir whose record predates the checkpoint_dir field (checkpoints kept apart) is not silently
    started over: without --checkpoint-dir it is refused; with its old checkpoints it resumes."""
    import shutil

    old = tmp_path / "runs" / "gan"
    shutil.copytree(gan_run, old)
    shutil.move(old / "checkpoints", tmp_path / "checkpoints-gan")
    record = json.loads((old / "config.json").read_text())
    del record["checkpoint_dir"]
    (old / "config.json").write_text(json.dumps(record))
    before = _snapshot(old)
    _refused(train_gan.main, [*GAN, "--epochs", "2", "--workdir", str(old)], "earlier jaxgan version",
             "--checkpoint-dir")
    assert _snapshot(old) == before
    printed = _ran(train_gan.main, [*GAN, "--epochs", "2", "--workdir", str(old),
                                    "--checkpoint-dir", str(tmp_path / "checkpoints-gan")])
    assert "resuming at epoch 1 of 2" in printed
    link = json.loads((tmp_path / "checkpoints-gan" / "run.json").read_text())
    assert link["workdir"] == str(old)
    recorded = json.loads((old / "config.json").read_text())["checkpoint_dir"]
    assert recorded == str(tmp_path / "checkpoints-gan")


def test_a_second_run_on_a_held_folder_is_refused_while_the_first_runs(tmp_path):
    """The lock covers the whole folder, and the checkpoints through another workdir."""
    folder = tmp_path / "run"
    with workdir.claim(str(folder), kind="gan", record={}, must_match={}) as held:
        _refused(train_gan.main, [*GAN, "--workdir", str(folder)], f"is using {folder}")
        _refused(train_gan.main, [*GAN, "--workdir", str(tmp_path / "other"),
                                  "--checkpoint-dir", held.checkpoint_dir], f"is using {held.checkpoint_dir}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # a claim that never began leaves nothing


def test_two_runs_started_at_once_on_one_folder_exactly_one_trains(tmp_path, subprocess_env):
    """Two processes of the same command on one workdir: one trains; the other is refused by the lock, or,
    if it came after, finds nothing left to train."""
    argv = [sys.executable, "-m", "experiments.train_gan", *GAN, "--epochs", "3",
            "--workdir", str(tmp_path / "run")]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    trained = [o for o in outcomes if o[0] == 0 and "steps/s over" in o[1]]
    others = [o for o in outcomes if o not in trained]
    assert len(trained) == 1 and len(others) == 1, outcomes
    code, out, err = others[0]
    assert (code == 2 and "another run (process" in err) or (code == 0 and "nothing to train" in out), others


def test_output_files_are_checked_before_any_work(tmp_path):
    """A folder where a file goes, or two outputs on one path, is refused before the generator is looked
    for (the GAN folder here does not even exist), and nothing is written."""
    missing = str(tmp_path / "no-such-run")
    (tmp_path / "s.npy").mkdir()
    _refused(sample.main, ["--gan-dir", missing, "--out", str(tmp_path / "s.npy")], "is a folder")
    _refused(sample.main, ["--gan-dir", missing, "--out", str(tmp_path / "t.npy"), "--png",
                           str(tmp_path / "t.npy")], "--png must name a .png file")
    (tmp_path / "i.png").mkdir()
    _refused(interpolate.main, ["--gan-dir", missing, "--out", str(tmp_path / "i.png")], "is a folder")
    (tmp_path / "j.json").mkdir()
    _refused(interpolate.main, ["--gan-dir", missing, "--out", str(tmp_path / "j.png")],
             "the JSON beside --out", "is a folder")
    with pytest.raises(UserError, match="both name"):
        _cli.output_files([("--out", str(tmp_path / "a.png")),
                           ("--png", str(tmp_path / "x" / ".." / "a.png"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.png", "j.json", "s.npy"]


def test_sample_writes_both_files_or_neither(gan_run, tmp_path, monkeypatch):
    """The samples and their grid are replaced together at the end: a failure in the grid keeps both old
    files."""
    out, png = tmp_path / "s.npy", tmp_path / "s.png"
    out.write_bytes(b"old samples")
    png.write_bytes(b"old grid")
    from jaxgan.plotting import gan as plots

    def broken(*args, **kwargs):
        """A grid writer that fails as a full disk would."""
        def write(f):
            raise OSError(28, "No space left on device")
        return write

    monkeypatch.setattr(plots, "grid_writer", broken)
    _refused(sample.main, ["--gan-dir", str(gan_run), "--n", "4", "--out", str(out), "--png", str(png)],
             f"cannot write {png}: No space left on device")
    assert out.read_bytes() == b"old samples" and png.read_bytes() == b"old grid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]
    monkeypatch.undo()
    _ran(sample.main, ["--gan-dir", str(gan_run), "--n", "4", "--out", str(out), "--png", str(png)])
    assert out.read_bytes()[:6] == b"\x93NUMPY" and png.read_bytes()[:4] == b"\x89PNG"


def test_temporary_files_are_each_writers_own_and_never_left_behind(tmp_path, monkeypatch):
    """Two writers of one path get two temporaries; a failed rename leaves the old file and no temporary."""
    path = tmp_path / "results.json"
    names = []
    for _ in range(2):
        f, tmp = files._temporary_beside(str(path), binary=False)
        f.close()
        names.append(tmp)
        os.remove(tmp)
    assert names[0] != names[1] and all(os.path.dirname(n) == str(tmp_path) for n in names)
    path.write_text("old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(files.WriteFailed, match=f"cannot write {path}: No space left on device"):
        files.write_json(path, {"new": 1})
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def _events(folder: pathlib.Path):
    """TensorBoard's own reader over the run folder's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_a_runs_tensorboard_events_hold_its_metrics_while_and_after_it_trains(gan_run, study_run):
    """The event files in the run folder, read back with TensorBoard's reader, hold the run's numbers: the
    GAN's losses as metrics.jsonl has them, its grids as images; the study's every run and epoch."""
    events = _events(gan_run)
    lines = [json.loads(line) for line in (gan_run / "metrics.jsonl").read_text().splitlines()]
    train = {e.step: e.value for e in events.Scalars("train/d_loss")}
    assert train == pytest.approx({line["step"]: line["d_loss"] for line in lines}, rel=1e-6)
    mean = events.Scalars("epoch_mean/g_loss")
    assert [e.step for e in mean] == [2] and mean[0].value == pytest.approx(
        sum(line["g_loss"] for line in lines) / len(lines), rel=1e-5)
    assert [e.step for e in events.Images("samples")] == [0, 1]  # --sample-every 1: a grid each step
    results = json.loads((study_run / "results.json").read_text())
    events = _events(study_run)
    for run in results["runs"]:
        tag = f"{run['model']}-{run['encoding']}/T{run['length']}/seed{run['seed']}/val_acc"
        values = [e.value for e in events.Scalars(tag)]
        assert values == pytest.approx(run["val_acc"], abs=1e-6)

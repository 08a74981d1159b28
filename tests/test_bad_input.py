"""The bad-input table: every bad input the project refuses, one row each, through the real CLI entry point.

Each row calls ``_cli.run(main, argv)`` in this process (as ``python -m experiments.NAME`` does)
and asserts a non-zero exit, exactly one stderr line, starting with ``error:``, naming the
problem, no traceback, and that nothing under the test's folders was written or changed (the
checkpoint directory's ``.lock`` file aside), not even an empty folder. The checkpoints the rows
point at are written here with the kind and config each experiment records, holding a toy
state: every refusal happens before any state is read. The README's table is this one.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _cli, interpolate, palindrome, reproduce, sample, train_classifier, train_gan
from jaxgan.classifier.train import checkpoint_record as classifier_record
from jaxgan.configs.base import to_record
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import KIND as GAN
from jaxgan.configs.gan import GANConfig
from jaxgan.gan.steps import checkpoint_tree, init_state
from jaxgan.palindrome.steps import run_config
from jaxgan.palindrome.train import sweep_record
from jaxgan.runtime import checkpoint

IMAGES = 128


def _idx(folder: pathlib.Path, count: int = IMAGES, labels: int | None = None, magic: int = 2051,
         cut: int = 0, dims: tuple[int, int, int] | None = None) -> pathlib.Path:
    """A train split of random IDX images; ``labels``, ``magic``, ``cut`` (bytes off the end) and ``dims``
    (the header's dimensions) spoil it."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8).tobytes()
    header = np.array([magic, *(dims or (count, 28, 28))], ">u4").tobytes()
    (folder / "train-images-idx3-ubyte").write_bytes((header + images)[:len(header + images) - cut])
    num_labels = count if labels is None else labels
    label_bytes = rng.integers(0, 10, num_labels, dtype=np.uint8).tobytes()
    label_header = np.array([2049, num_labels], ">u4").tobytes()
    (folder / "train-labels-idx1-ubyte").write_bytes(label_header + label_bytes)
    return folder


def _checkpoint(directory: pathlib.Path, config: dict, step: int = 2, state=None) -> pathlib.Path:
    """A checkpoint directory whose one checkpoint records ``config`` (the state a toy unless given)."""
    manager = checkpoint.open_manager(directory)
    checkpoint.save(manager, step, {"w": jnp.zeros(3)} if state is None else state, config)
    manager.wait_until_finished()
    manager.close()
    return directory


def _nan_ema_gan(directory: pathlib.Path) -> pathlib.Path:
    """A real (small) GAN checkpoint whose EMA weights are NaN: the state a NaN EMA decay trained."""
    config = GANConfig(gen_features=(32, 64), disc_features=(64, 32))
    state = init_state(config)
    state = state.replace(ema_params=jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state.ema_params))
    record = {**to_record(config, GAN), "source": "idx", "num_images": IMAGES, "data_sha256": "0" * 16}
    return _checkpoint(directory, record, state=checkpoint_tree(state))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The folders and checkpoints the rows point at, made once."""
    return _make_inputs(tmp_path_factory.mktemp("inputs"))


def _make_inputs(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Makes the rows' folders and checkpoints in ``root``."""
    (root / "file").write_text("a regular file, not a folder\n")
    (root / "empty_tfds").mkdir()
    gan_record = {**to_record(GANConfig(), GAN), "source": "idx", "num_images": IMAGES,
                  "data_sha256": "0" * 16}
    sweep = run_config("rnn", max_length=4, hidden=8, num_examples=64, batch_size=16)
    return {
        "root": root, "file": root / "file", "empty_tfds": root / "empty_tfds",
        "idx": _idx(root / "idx"), "bad_magic": _idx(root / "bad_magic", magic=2049),
        "truncated": _idx(root / "truncated", cut=1000),
        "mismatch": _idx(root / "mismatch", labels=IMAGES - 1),
        # 4194304 x 2097152 x 2097152 = 2**64: 0 when multiplied in int64
        "huge_dims": _idx(root / "huge_dims", dims=(2**22, 2**21, 2**21)),
        "gan_ck": _checkpoint(root / "gan_ck", gan_record),
        "classifier_ck": _checkpoint(root / "classifier_ck", classifier_record(
            ClassifierConfig(), source="idx", num_images=IMAGES)),
        "palindrome_ck": _checkpoint(root / "palindrome_ck" / "rnn-scalar",
                                     sweep_record(sweep, [3, 4], [0], 2)).parent,
        "nan_gan_ck": _nan_ema_gan(root / "nan_gan_ck"),
    }


MAINS = {"palindrome": palindrome.main, "train_gan": train_gan.main,
         "train_classifier": train_classifier.main, "sample": sample.main, "interpolate": interpolate.main,
         "reproduce": reproduce.main}
# Scripts whose outputs (workdir, checkpoints) go to the row's own folder.
TRAINERS = ("palindrome", "train_gan", "train_classifier", "reproduce")
PAL_TINY = "--models rnn --lengths 3 4 --seeds 1 --epochs 2 --num-examples 64 --batch-size 16"

# (bad input, script, flags; {name} is a path from ``inputs`` or {out}, this row's own output
# folder; words the one line must contain)
ROWS = [
    ("palindrome length 0", "palindrome", "--lengths 0", "input length 0 is out of range"),
    ("palindrome length -1", "palindrome", "--lengths -1", "input length -1 is out of range"),
    ("palindrome length above the maximum", "palindrome", "--lengths 101",
     "must be between 1 and 100"),
    ("palindrome length not an integer", "palindrome", "--lengths ten", "invalid int value: 'ten'"),
    ("palindrome length not an integer", "palindrome", "--lengths 2.5", "invalid int value: '2.5'"),
    ("zero epochs", "palindrome", "--epochs 0", "--epochs must be at least 1, not 0"),
    ("negative epochs", "palindrome", "--epochs -3", "--epochs must be at least 1, not -3"),
    ("zero epochs", "train_gan", "--epochs 0", "--epochs must be at least 1, not 0"),
    ("negative epochs", "train_classifier", "--epochs -1", "--epochs must be at least 1, not -1"),
    ("zero seeds", "palindrome", "--seeds 0", "--seeds must be at least 1, not 0"),
    ("negative seeds", "palindrome", "--seeds -2", "--seeds must be at least 1, not -2"),
    ("negative seed", "train_gan", "--seed -1", "--seed must be at least 0, not -1"),
    ("zero batch size", "palindrome", "--batch-size 0", "--batch-size must be at least 1, not 0"),
    ("negative batch size", "train_gan", "--batch-size -64", "--batch-size must be at least 2, not -64"),
    ("batch size larger than the data set", "palindrome", "--batch-size 4096",
     "batch size 4096 is larger than the 1638 training examples"),
    ("batch size larger than the data set", "train_gan", "--dataset idx:{idx} --batch-size 256",
     "batch size 256 is larger than the 128 images"),
    ("batch size larger than the data set", "train_classifier", "--dataset idx:{idx} --batch-size 1000",
     "batch size 1000 is larger than the 102 training images"),
    ("too few palindromes to split", "palindrome", "--num-examples 2", "too few to split"),
    ("unknown model", "palindrome", "--models gru", "invalid choice: 'gru'"),
    ("unknown encoding", "palindrome", "--encoding binary", "invalid choice: 'binary'"),
    ("unknown dataset name", "train_gan", "--dataset cifar10", "unknown image source 'cifar10'"),
    ("idx: missing folder", "train_gan", "--dataset idx:{root}/nowhere", "no folder at"),
    ("idx: wrong magic number", "train_gan", "--dataset idx:{bad_magic}", "has magic number 2049, not 2051"),
    ("idx: truncated file", "train_gan", "--dataset idx:{truncated}", "is truncated"),
    ("idx: images and labels of different counts", "train_gan", "--dataset idx:{mismatch}",
     "has 128 images but"),
    ("idx: dimensions whose product overflows int64", "train_gan", "--dataset idx:{huge_dims} --epochs 1",
     "(dimensions 4194304 x 2097152 x 2097152) promises 18446744073709551632"),
    ("tfds data dir without MNIST", "train_gan", "--dataset mnist --data-dir {empty_tfds}",
     "MNIST is not prepared in the tfds data dir"),
    ("checkpoint dir of the other experiment", "palindrome", "--checkpoint-dir {gan_ck}",
     "holds GAN checkpoints of its own, but this run keeps one folder of checkpoints per sweep there"),
    ("checkpoint dir of the other experiment", "train_gan",
     "--dataset idx:{idx} --checkpoint-dir {palindrome_ck}/rnn-scalar",
     "holds a 'palindrome-sweep' checkpoint, not a 'gan' one"),
    ("checkpoint dir of the other experiment", "sample", "--checkpoint-dir {palindrome_ck} --out {out}/s.npy",
     "holds the checkpoint directories rnn-scalar rather than checkpoints of its own"),
    ("checkpoint of a different architecture", "palindrome",
     f"{PAL_TINY} --hidden 16 --checkpoint-dir {{palindrome_ck}}",
     "was written with hidden=8, but this run has hidden=16"),
    ("checkpoint of a different architecture", "train_gan",
     "--dataset idx:{idx} --latent-dim 50 --checkpoint-dir {gan_ck}",
     "was written with latent_dim=100, but this run has latent_dim=50"),
    ("a step that does not exist", "sample", "--checkpoint-dir {gan_ck} --step 99 --out {out}/s.npy",
     "no checkpoint at step 99 in"),
    ("a step that does not exist", "interpolate", "--checkpoint-dir {gan_ck} --step 99 --out {out}/i.png",
     "no checkpoint at step 99 in"),
    ("unwritable workdir", "palindrome", "--workdir {file}/sub", "cannot create the run folder"),
    ("unwritable workdir", "train_gan", "--workdir {file}/sub", "cannot create the run folder"),
    ("unwritable workdir", "train_classifier", "--dataset idx:{idx} --workdir {file}/sub",
     "cannot create the run folder"),
    ("unwritable output", "sample", "--checkpoint-dir {gan_ck} --out {file}/s.npy",
     "is a file, not a directory"),
    ("classifier checkpoint where a GAN one is expected", "sample",
     "--checkpoint-dir {classifier_ck} --out {out}/s.npy", "holds a 'classifier' checkpoint, not a GAN one"),
    ("classifier checkpoint where a GAN one is expected", "interpolate",
     "--checkpoint-dir {classifier_ck} --out {out}/i.png", "holds a 'classifier' checkpoint, not a GAN one"),
    ("GAN checkpoint where a classifier one is expected", "interpolate",
     "--checkpoint-dir {gan_ck} --classifier-dir {gan_ck} --out {out}/i.png",
     "holds a 'gan' checkpoint, not a classifier one"),
    ("missing checkpoint dir", "sample", "--checkpoint-dir {root}/nowhere --out {out}/s.npy",
     "no checkpoint directory at"),
    # Settings under which a component is undefined or degenerate.
    ("a batch of one image (BatchNorm)", "train_gan", "--batch-size 1",
     "the batch size must be at least 2: the generator's BatchNorm normalises over the batch"),
    ("too few held-out images for the scores", "train_classifier",
     "--dataset idx:{idx} --holdout 0.05 --batch-size 32",
     "holds out 6, fewer than the 10 images the scores need"),
    ("too few images for the whole study", "reproduce", "--dataset idx:{idx}",
     "gives 128 images, too few for the whole study: the batch size 128 is larger than the 102 training"),
    ("no images between the ends", "interpolate", "--checkpoint-dir {gan_ck} --steps 0 --out {out}/i.png",
     "--steps must be at least 1, not 0"),
    ("a row too wide to draw", "interpolate", "--checkpoint-dir {gan_ck} --steps 80000 --out {out}/i.png",
     "cannot be drawn: 4 rows of 80002 images make a figure of 8800220 x 560 pixels"),
    ("more pairs than the search draws", "interpolate",
     "--checkpoint-dir {gan_ck} --classifier-dir {classifier_ck} --pairs 10001 --out {out}/i.png",
     "--pairs 10001 can never be found"),
    ("a seed beyond the 32 bits of a JAX key", "train_gan", "--seed 4294967296",
     "--seed must be at most 4294967295, not 4294967296 (a JAX random key keeps 32 bits of its seed"),
    ("a seed beyond the 32 bits of a JAX key", "sample", "--checkpoint-dir {gan_ck} --seed 4294967297 "
     "--out {out}/s.npy", "4294967297 is above 4294967295: a JAX random key keeps 32 bits of its seed"),
    ("seeds beyond the sweep's int32", "reproduce", "--dataset idx:{idx} --seed 4294967295",
     "the palindrome sweep would take seeds 4294967295 to 4294967297, beyond the int32"),
    # Sizes: every flag whose value sizes an array, a loop or a file is bounded, and checked (a range
    # by its ends) before anything is allocated or written; a run's steps must fit its int32 counter.
    ("a range of lengths beyond the maximum", "palindrome", "--lengths 1:100000000000",
     "input length 100000000000 is out of range: it must be between 1 and 100"),
    ("epochs beyond the maximum", "palindrome", "--lengths 5 --seeds 1 --models rnn --epochs 100000000000000",
     "--epochs must be at most 100000, not 100000000000000 (every epoch's metrics"),
    ("seeds beyond the maximum", "palindrome", "--seeds 100000", "--seeds must be at most 1000, not 100000"),
    ("hidden units beyond the maximum", "palindrome", "--hidden 1000000", "--hidden must be at most 8192"),
    ("palindromes beyond the maximum", "palindrome", "--num-examples 100000000",
     "--num-examples must be at most 1000000"),
    ("steps beyond the int32 step counter", "palindrome",
     "--num-examples 1000000 --batch-size 1 --epochs 100000",
     "make 80000000000 steps, beyond the int32 step counter (at most 2147483647)"),
    ("steps beyond the int32 step counter", "train_gan", "--dataset idx:{idx} --epochs 2000000000",
     "--epochs 2000000000 of 2 steps each (128 images in batches of 64) make 4000000000 steps"),
    ("steps beyond the int32 step counter", "train_classifier",
     "--dataset idx:{idx} --batch-size 32 --epochs 1000000000", "make 3000000000 steps, beyond the int32"),
    ("epochs beyond the int32 step counter", "train_gan", "--epochs 100000000000000",
     "--epochs must be at most 2147483647, not 100000000000000 (the step counter is an int32"),
    ("epochs beyond the int32 step counter", "reproduce", "--dataset idx:{idx} --gan-epochs 100000000000000",
     "--epochs must be at most 2147483647"),
    ("a sample interval beyond the int32 step counter", "train_gan", "--sample-every 100000000000",
     "--sample-every must be at most 2147483647, not 100000000000 (it is compared with the int32 step"),
    ("latent size beyond the maximum", "train_gan", "--latent-dim 100000000",
     "--latent-dim must be at most 65536"),
    ("more samples than the maximum", "sample", "--checkpoint-dir {gan_ck} --n 1000000000 --out {out}/s.npy",
     "argument --n: 1000000000 is above 1000000"),
    ("more images than one figure draws", "interpolate",
     "--checkpoint-dir {gan_ck} --pairs 1000 --steps 1000 --out {out}/i.png",
     "--pairs 1000 --steps 1000 make 1002000 images, more than the 10000 one figure draws"),
    # Numbers checked as they are used, in float32.
    ("EMA decay that is 1.0 in float32", "train_gan", "--ema-decay 0.99999999",
     "--ema-decay must be below 1, not 0.99999999, which is 1.0 in float32, the precision it is used in"),
    ("Adam b1 that is 1.0 in float32", "train_gan", "--b1 0.99999999", "0.99999999, which is 1.0 in float32"),
    ("Adam b2 that is 1.0 in float32", "train_gan", "--b2 0.999999999",
     "0.999999999, which is 1.0 in float32"),
    ("learning rate that is 0 in float32", "train_gan", "--lr 1e-50",
     "--lr must be above 0, not 1e-50, which is 0.0 in float32, the precision it is used in"),
    ("learning rate that is 0 in float32", "palindrome", "--lr 1e-46", "1e-46, which is 0.0 in float32"),
    ("learning rate that is 0 in float32", "train_classifier", "--learning-rate 1e-50",
     "1e-50, which is 0.0 in float32"),
    ("clipping norm that is infinite in float32", "palindrome", "--clip-norm 1e39",
     "--clip-norm must be a finite number, not 1e+39, which is inf in float32"),
    ("learning rate that is not a number", "train_gan", "--lr nan", "--lr must be a finite number, not nan"),
    # Nothing is drawn from weights that are not finite.
    ("generator weights that are NaN", "sample", "--checkpoint-dir {nan_gan_ck} --out {out}/s.npy",
     "the ema weights of the generator at step 2 in"),
    ("generator weights that are NaN", "interpolate", "--checkpoint-dir {nan_gan_ck} --out {out}/i.png",
     "are not all finite (NaN or infinity), so they cannot draw images"),
]


# Bad environments, each in a process of its own (how a process starts is what they change):
# (bad input, script, flags as in ROWS, the environment's additions, words the one line must contain).
ENV_ROWS = [
    ("JAX's 64-bit mode", "palindrome", "--lengths 5 --seeds 1 --models rnn --epochs 2",
     {"JAX_ENABLE_X64": "1"}, "JAX's 64-bit mode is on (JAX_ENABLE_X64 or jax_enable_x64), but jaxgan"),
    ("JAX's 64-bit mode", "train_gan", "--dataset idx:{idx} --epochs 1", {"JAX_ENABLE_X64": "1"},
     "64-bit defaults would draw other random numbers and give other results; unset JAX_ENABLE_X64"),
    ("JAX's 64-bit mode", "sample", "--checkpoint-dir {gan_ck} --out {out}/s.npy", {"JAX_ENABLE_X64": "1"},
     "JAX's 64-bit mode is on"),
]
REPO = pathlib.Path(__file__).resolve().parents[1]
# Rows the table shows for conditions its generator cannot make: a full disk (tests/test_full_disk.py
# makes it with a 40 MB tmpfs, and with a file-size limit where it cannot mount one).
HAND_ROWS = [
    "| a full disk during a checkpoint save | `python -m experiments.train_gan --dataset digits "
    "--limit-images 256 --epochs 3 --checkpoint-every 1 --checkpoint-dir FULL_40MB/ck` | `error: the "
    "checkpoint at step 8 in FULL_40MB/ck could not be written (No space left on device), so training "
    "stopped; the checkpoint at step 4 is the last good one` |",
    "| a full disk for the run's files | `python -m experiments.train_gan --dataset digits "
    "--limit-images 256 --sample-every 1 --workdir FULL/w` | `error: cannot write "
    "FULL/w/samples/step_0000004.png: No space left on device; the run stopped there, and what was "
    "written before it is intact` |",
]


def _script_env(added: dict) -> dict:
    """The environment of a script run from this repository, with ``added``."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "JAXGAN_COMPILATION_CACHE": "0", **added}


def _files(root: pathlib.Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != checkpoint.LOCK_NAME}


def _with_outputs(script: str, argv: list[str], out: pathlib.Path) -> list[str]:
    """``argv`` with a trainer's workdir and checkpoints in ``out`` unless the row names them."""
    if script not in TRAINERS:
        return argv
    defaults = {"--workdir": str(out / "work")}
    if script != "reproduce":  # it keeps its checkpoints inside its workdir
        defaults["--checkpoint-dir"] = str(out / "ck")
    return argv + [word for flag, value in defaults.items() if flag not in argv for word in (flag, value)]


def _argv(flags: str, paths: dict) -> list[str]:
    """The row's flags with the paths filled in."""
    return [word.format(**paths) for word in flags.split()]


@pytest.mark.parametrize("what, script, flags, words", ROWS,
                         ids=[f"{i:02d}-{script}-{what.replace(' ', '_')}" for i, (what, script, _, _) in
                              enumerate(ROWS)])
def test_bad_input_is_one_sentence_and_writes_nothing(what, script, flags, words, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    paths = {k: str(v) for k, v in inputs.items()} | {"out": str(out)}
    argv = _with_outputs(script, _argv(flags, paths), out)
    before = {"inputs": _files(inputs["root"]), "out": _files(tmp_path)}
    with pytest.raises(SystemExit) as stop:
        _cli.run(MAINS[script], argv)
    assert stop.value.code not in (0, None)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0] and "Traceback" not in err, lines[0]
    assert {"inputs": _files(inputs["root"]), "out": _files(tmp_path)} == before  # nothing written
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # not even a folder


@pytest.mark.parametrize("what, script, flags, env, words", ENV_ROWS,
                         ids=[f"{script}-{what.replace(' ', '_')}" for what, script, *_ in ENV_ROWS])
def test_bad_environment_is_one_sentence_and_writes_nothing(what, script, flags, env, words, inputs,
                                                            tmp_path):
    out = tmp_path / "out"
    paths = {k: str(v) for k, v in inputs.items()} | {"out": str(out)}
    argv = _with_outputs(script, _argv(flags, paths), out)
    before = {"inputs": _files(inputs["root"]), "out": _files(tmp_path)}
    done = subprocess.run([sys.executable, "-m", f"experiments.{script}", *argv], cwd=tmp_path,
                          env=_script_env(env), capture_output=True, text=True, timeout=300)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert words in lines[0], lines[0]
    assert {"inputs": _files(inputs["root"]), "out": _files(tmp_path)} == before  # nothing written
    assert not out.exists()


def test_library_calls_refuse_64_bit_mode_too(inputs):
    """A notebook that turned jax_enable_x64 on gets the sentence from each trainer's config check and from
    restore_generator, before any work."""
    from jaxgan.configs.palindrome import PalindromeConfig
    from jaxgan.gan.generate import restore_generator

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        for config in (PalindromeConfig(), GANConfig(), ClassifierConfig()):
            with pytest.raises(_cli.UserError, match="JAX's 64-bit mode is on"):
                config.validate()
        with pytest.raises(_cli.UserError, match="JAX's 64-bit mode is on"):
            restore_generator(str(inputs["gan_ck"]))
    finally:
        jax.config.update("jax_enable_x64", before)


def test_the_debug_flag_shows_the_traceback(inputs, tmp_path):
    with pytest.raises(_cli.UserError, match="input length 0 is out of range"):
        _cli.run(palindrome.main, ["--lengths", "0", "--debug", "--workdir", str(tmp_path / "w")])


def test_rows_are_the_issue_list():
    """Every bad input the issue names has a row."""
    named = {"palindrome length 0", "palindrome length -1", "palindrome length above the maximum",
             "palindrome length not an integer", "zero epochs", "negative epochs", "zero seeds",
             "negative seeds", "zero batch size", "negative batch size",
             "batch size larger than the data set",
             "unknown model", "unknown encoding", "unknown dataset name", "idx: missing folder",
             "idx: wrong magic number", "idx: truncated file", "idx: images and labels of different counts",
             "tfds data dir without MNIST", "checkpoint dir of the other experiment",
             "checkpoint of a different architecture", "a step that does not exist", "unwritable workdir",
             "classifier checkpoint where a GAN one is expected"}
    assert named <= {row[0] for row in ROWS}
    assert len({(row[1], row[2]) for row in ROWS}) == len(ROWS)  # no row twice


def markdown_table(inputs: dict) -> str:  # pragma: no cover - used by hand: python tests/test_bad_input.py
    """The README table: runs every row and prints its stderr line."""
    import contextlib
    import io
    import tempfile

    lines = ["| bad input | command | what the user sees (stderr, exit 2) |", "|---|---|---|"]
    for what, script, flags, _ in ROWS:
        with tempfile.TemporaryDirectory() as out:
            paths = {k: str(v) for k, v in inputs.items()} | {"out": out}
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                with contextlib.suppress(SystemExit):
                    _cli.run(MAINS[script], _with_outputs(script, _argv(flags, paths), pathlib.Path(out)))
        shown = err.getvalue().strip()
        for name, path in sorted(paths.items(), key=lambda item: -len(item[1])):
            shown, flags = shown.replace(path, name.upper()), flags.replace("{" + name + "}", name.upper())
        cell = f"`` {shown} ``" if "`" in shown else f"`{shown}`"  # a message may quote a command
        lines.append(f"| {what} | `python -m experiments.{script} {flags}` | {cell} |")
    for what, script, flags, env, _ in ENV_ROWS:
        with tempfile.TemporaryDirectory() as out:
            paths = {k: str(v) for k, v in inputs.items()} | {"out": out}
            argv = _with_outputs(script, _argv(flags, paths), pathlib.Path(out))
            shown = subprocess.run([sys.executable, "-m", f"experiments.{script}", *argv],
                                   env=_script_env(env), capture_output=True, text=True).stderr.strip()
        for name, path in sorted(paths.items(), key=lambda item: -len(item[1])):
            shown, flags = shown.replace(path, name.upper()), flags.replace("{" + name + "}", name.upper())
        prefix = " ".join(f"{key}={value}" for key, value in env.items())
        lines.append(f"| {what} | `{prefix} python -m experiments.{script} {flags}` | `{shown}` |")
    lines.extend(HAND_ROWS)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(markdown_table(_make_inputs(pathlib.Path(tmp))))

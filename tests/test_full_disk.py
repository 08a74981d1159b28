"""A full or vanishing disk: every write of a run ends in one sentence, and nothing written before is lost.

The checkpoint saves are asynchronous, so a save the disk refuses fails in Orbax's background
thread; the run learns of it at its next save (Orbax waits for the previous one there anyway)
or at its end, and stops with the step that was lost and the newest one on disk, which the failed
save left intact. Result files (metrics, grids, figures, reports) fail where they are written.
Real failures come from the kernel: a per-process file-size limit (RLIMIT_FSIZE; Python ignores
SIGXFSZ, so a write past it fails with EFBIG) and, where this process may mount one, a 40 MB tmpfs.
"""

from __future__ import annotations

import errno
import os
import pathlib
import resource
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from jaxgan.runtime import checkpoint, files, loop

REPO = pathlib.Path(__file__).resolve().parents[1]
GAN_TINY = ["--dataset", "digits", "--limit-images", "256", "--epochs", "3", "--checkpoint-every", "1"]


# ``python -m experiments.train_gan`` after limiting the size of every file the process writes
# (set inside the child: a preexec_fn would fork this multithreaded process).
LIMITED = ("import resource, runpy, sys; limit = int(sys.argv.pop(1)); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
           "runpy.run_module('experiments.train_gan', run_name='__main__', alter_sys=True)")


def _train_gan(argv: list[str], *, file_limit: int = resource.RLIM_INFINITY) -> subprocess.CompletedProcess:
    """``python -m experiments.train_gan ARGV`` in its own process, each file it writes at most
    ``file_limit`` bytes."""
    env = {**os.environ, "JAXGAN_COMPILATION_CACHE": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", LIMITED, str(file_limit), *argv], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    """The run's last stderr line, after checking it is the only error and no traceback came with it."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "ERROR:absl" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr[-3000:]
    return errors[0]


def _state(scale: float) -> dict:
    """A small pytree whose values say which step wrote it."""
    return {"w": jnp.arange(300.0) * scale}


def test_a_save_that_fails_in_the_background_stops_the_next_save_naming_the_last_good_step(tmp_path,
                                                                                           monkeypatch):
    record = {"kind": "toy"}
    abstract = jax.eval_shape(lambda: _state(1.0))
    with pytest.raises(checkpoint.SaveFailed) as failed:
        with loop.open_run(str(tmp_path), kind="toy", record=record, abstract=abstract) as run:
            run.save(1, _state(1.0))
            run.save(2, _state(2.0))
            real_wait = run.manager.wait_until_finished

            def full_disk():
                """The save finishes, then Orbax re-raises what its thread met, as on a full disk."""
                real_wait()
                monkeypatch.setattr(run.manager, "wait_until_finished", real_wait)
                raise ValueError("RESOURCE_EXHAUSTED: Error writing \"w/0\" in OCDBT database: Failed to "
                                 "write 1413120 bytes to file 15: No space left on device "
                                 "[os_error_code='28']")

            monkeypatch.setattr(run.manager, "wait_until_finished", full_disk)
            run.save(3, _state(3.0))
            pytest.fail("the third save started after the second failed")
    assert str(failed.value) == (f"the checkpoint at step 2 in {tmp_path} could not be written (No space "
                                 f"left on device), so training stopped; the checkpoint at step 1 is the "
                                 f"last good one")
    assert "3" not in os.listdir(tmp_path)
    manager = checkpoint.open_manager(tmp_path, create=False)
    state, _ = checkpoint.restore(manager, abstract, kind="toy", step=1)  # the last good one is intact
    manager.close()
    assert float(state["w"][1]) == 1.0


def test_checkpoints_the_disk_refuses_end_the_gan_in_one_sentence(tmp_path):
    """A real failure in Orbax's thread (each checkpoint's data is larger than the file-size limit)."""
    done = _train_gan([*GAN_TINY, "--workdir", str(tmp_path / "w"), "--checkpoint-dir", str(tmp_path / "ck")],
                      file_limit=1 << 20)
    line = _one_error_line(done)
    assert line == (f"error: the checkpoint at step 4 in {tmp_path / 'ck'} could not be written (File too "
                    f"large), so training stopped; there is no earlier checkpoint in {tmp_path / 'ck'}")


def test_result_files_the_disk_refuses_end_the_gan_in_one_sentence(tmp_path):
    done = _train_gan([*GAN_TINY, "--sample-every", "1", "--workdir", str(tmp_path / "w"),
                       "--checkpoint-dir", str(tmp_path / "ck")], file_limit=4096)
    line = _one_error_line(done)
    assert line.startswith(f"error: cannot write {tmp_path / 'w'}") and ": File too large;" in line, line


@pytest.fixture
def tmpfs_40mb(tmp_path):
    """A 40 MB tmpfs at ``tmp_path/disk``; skips where this process may not mount one (it needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_during_a_checkpoint_keeps_the_last_good_one_and_names_it(tmpfs_40mb, tmp_path):
    """The study's GAN saves 27 MB a checkpoint: the first fits on 40 MB, the second does not."""
    done = _train_gan([*GAN_TINY, "--workdir", str(tmp_path / "w"), "--checkpoint-dir",
                       str(tmpfs_40mb / "ck")])
    line = _one_error_line(done)
    assert line == (f"error: the checkpoint at step 8 in {tmpfs_40mb / 'ck'} could not be written (No space "
                    f"left on device), so training stopped; the checkpoint at step 4 is the last good one")
    from jaxgan.configs.gan import KIND, GANConfig
    from jaxgan.gan.steps import checkpoint_tree, init_state

    manager = checkpoint.open_manager(tmpfs_40mb / "ck", create=False)
    abstract = checkpoint_tree(jax.eval_shape(lambda: init_state(GANConfig())))
    state, _ = checkpoint.restore(manager, abstract, kind=KIND, step=4)
    manager.close()
    assert int(state["step"]) == 4


def _refuse(*args, **kwargs):
    """What a full disk does to a write."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_every_result_writer_on_a_full_disk_is_one_sentence_and_keeps_the_old_file(tmp_path, monkeypatch):
    old = tmp_path / "results.json"
    files.write_json(old, {"kept": True})
    log = tmp_path / "metrics.jsonl"
    files.append_jsonl(log, [{"step": 1}])
    monkeypatch.setattr(files.os, "fsync", _refuse)
    for write in (lambda: files.write_json(old, {"kept": False}), lambda: files.write_text(old, "x"),
                  lambda: files.write_npy(tmp_path / "results.npy", jnp.zeros(3)),
                  lambda: files.append_jsonl(log, [{"step": 2}])):
        with pytest.raises(files.WriteFailed, match=r"^cannot write .*: No space left on device; the run "):
            write()
    assert old.read_text() == '{\n  "kept": true\n}\n' and files.read_jsonl(log)[0] == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "results.json"]  # no temporaries
    monkeypatch.setattr(files.os, "makedirs", _refuse)
    with pytest.raises(files.WriteFailed, match="No space left on device"):
        files.make_dir(tmp_path / "figures")

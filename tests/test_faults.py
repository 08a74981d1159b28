"""Fault injection on the real command lines: palindrome and train_gan killed (SIGKILL, SIGTERM), restarted.

For each experiment, one uninterrupted run and one interrupted chain run side by side on tiny
settings. The chain is interrupted at six moments (five SIGKILLs: at startup, during an
asynchronous save, just after a save, and at random delays drawn from a seeded generator; one
SIGTERM), its newest checkpoint is damaged once on the way, and it is restarted with the same
command until it finishes. After every interruption the checkpoint the next start resumes from
must equal the uninterrupted run's checkpoint of that step bit for bit; at the end both runs
must hold the same parameters, optimiser state and metrics, and have written the same outputs.

Speed (100 to 130 CPU-seconds in all): the GAN's scenario runs in a thread beside the palindrome
test, so the two experiments' processes share the two cores (its test waits for the thread and
reports); all processes share one persistent compilation cache per test session
(``subprocess_env`` in conftest.py), so only the uninterrupted runs compile; and each run is a
process forked from a "zygote" that has imported JAX, Flax, Orbax and matplotlib (but started no
JAX backend) and then runs the script as ``python -m experiments.NAME ARGS`` would (``runpy``),
so 16 starts do not pay 16 interpreter starts and imports. Set
JAXGAN_FAULTS_NO_FORK=1 to start every run as a plain ``python -m`` process instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgan.configs.base import from_record
from jaxgan.configs.gan import KIND as GAN_KIND
from jaxgan.configs.gan import GANConfig
from jaxgan.errors import UserError
from jaxgan.gan.steps import checkpoint_tree
from jaxgan.gan.steps import init_state as gan_init_state
from jaxgan.palindrome.steps import RunConfig
from jaxgan.palindrome.train import KIND as CHECKPOINT_KIND
from jaxgan.palindrome.train import sweep_target
from jaxgan.runtime import checkpoint, files

# Restoring the damaged checkpoint on purpose leaves an Orbax coroutine behind that later finds its
# event loop closed: noise about damage the test inflicts, not a failure.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAL_EPOCHS, PAL_CHUNK = 12, 2
GAN_EPOCHS, GAN_STEPS_PER_EPOCH, GAN_IMAGES, GAN_BATCH = 8, 2, 32, 16
KEEP_ALL = "100"  # the uninterrupted runs keep every checkpoint, to compare each resume point with


# --- starting runs: plain processes, or children of a fork server that has done the imports ---


def _zygote() -> None:
    """The fork server (``python tests/test_faults.py --zygote``): imports once, forks one child per run.

    Requests and replies are JSON lines on stdin and stdout: ``{"module", "argv", "log"}`` starts
    a run and answers ``{"pid"}``; ``{"wait": pid}`` reaps it and answers ``{"code", "cpu"}`` (as
    ``Popen.returncode``: -9 when killed by SIGKILL; its CPU seconds). No JAX backend is started
    here, so each child starts its own, as a fresh process would.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import tqdm  # noqa: F401

    from experiments import _cli  # noqa: F401
    from jaxgan.data import images  # noqa: F401
    from jaxgan.plotting import gan as gan_plots  # noqa: F401
    from jaxgan.plotting import palindrome as palindrome_plots  # noqa: F401

    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    while line := sys.stdin.readline():
        request = json.loads(line)
        if "wait" in request:
            _, status, usage = os.wait4(request["wait"], 0)
            reply = {"code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime}
        else:
            pid = os.fork()
            if pid == 0:
                _zygote_child(request)
            reply = {"pid": pid}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def _zygote_child(request: dict) -> None:
    """In the forked child: output to the log, then ``python -m MODULE ARGS`` via runpy; never returns."""
    import runpy
    import traceback

    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(fd, target)
    os.close(null)
    os.close(log)
    code = 1
    try:
        sys.argv = [request["module"], *request["argv"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        if isinstance(stop.code, int) or stop.code is None:
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Forked:
    """A run forked by the zygote, with the Popen methods the tests use."""

    def __init__(self, launcher: Launcher, pid: int):
        self.launcher, self.pid, self.returncode, self.cpu_s = launcher, pid, None, float("nan")

    def _alive(self) -> bool:
        """Running: not yet exited (an exited child stays a zombie until the zygote reaps it)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in (b"Z", b"X")

    def poll(self) -> int | None:
        """The exit code once the run has ended, else None."""
        if self.returncode is None and not self._alive():
            reply = self.launcher.request({"wait": self.pid})
            self.returncode, self.cpu_s = reply["code"], reply["cpu"]
        return self.returncode

    def wait(self, timeout: float) -> int:
        """Waits for the end of the run and returns its exit code."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signals the run (nothing if it has ended)."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class Launcher:
    """Starts ``python -m MODULE ARGS`` commands: forked by a zygote, or as plain processes."""

    def __init__(self, env: dict):
        self.env, self.zygote, self.lock = env, None, threading.Lock()
        if os.environ.get("JAXGAN_FAULTS_NO_FORK") != "1":
            self.zygote = subprocess.Popen([sys.executable, __file__, "--zygote"], cwd=ROOT, env=env,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert "ready" in json.loads(self.zygote.stdout.readline())

    def request(self, message: dict) -> dict:
        """One request to the zygote, and its reply (the GAN's thread and the main thread share it)."""
        with self.lock:
            self.zygote.stdin.write(json.dumps(message) + "\n")
            self.zygote.stdin.flush()
            return json.loads(self.zygote.stdout.readline())

    def start(self, command: list[str], log: pathlib.Path):
        """Starts the command with its output appended to ``log``."""
        assert command[:2] == [sys.executable, "-m"], command
        if self.zygote is None:
            with open(log, "a") as out:
                return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return Forked(self, self.request({"module": command[2], "argv": command[3:], "log": str(log)})["pid"])

    def close(self) -> None:
        """Ends the zygote (its children have ended or are ended by their tests)."""
        if self.zygote is not None:
            self.zygote.stdin.close()
            self.zygote.wait(timeout=60)


@pytest.fixture(scope="module")
def launcher(subprocess_env):
    """One Launcher (one zygote) for the module."""
    started = Launcher(subprocess_env)
    yield started
    started.close()


@dataclasses.dataclass
class Run:
    """One run of a command in its own directory: run/ (outputs), ck/ (checkpoints), log.txt."""

    directory: pathlib.Path
    command: list[str]  # python -m MODULE ARGS
    launcher: Launcher
    nested: bool  # the palindrome keeps one checkpoint folder per sweep below ck/

    def start(self):
        """Starts the command; its output goes to log.txt so that a pipe never blocks it."""
        return self.launcher.start(self.command, self.directory / "log.txt")

    @property
    def ck(self) -> pathlib.Path:
        """The directory given as --checkpoint-dir (it holds the lock)."""
        return self.directory / "ck"

    def checkpoint_dirs(self) -> list[pathlib.Path]:
        """The Orbax directories: ck/ itself, or its sweep folders."""
        if not self.nested:
            return [self.ck]
        return sorted(p for p in self.ck.iterdir() if p.is_dir()) if self.ck.is_dir() else []

    def _names(self) -> list[tuple[str, str]]:
        """(folder, entry) in every checkpoint folder; plain os calls, as it is polled every 2 ms."""
        ck = str(self.ck)
        try:
            folders = [""] if not self.nested else [n for n in os.listdir(ck)
                                                    if os.path.isdir(os.path.join(ck, n))]
            return [(f or "ck", n) for f in folders for n in os.listdir(os.path.join(ck, f))]
        except (FileNotFoundError, NotADirectoryError):  # not yet made, or the lock file
            return []

    def steps(self) -> set[tuple[str, int]]:
        """(folder, step) of every finished checkpoint."""
        return {(folder, int(name)) for folder, name in self._names() if name.isdigit()}

    def saving(self) -> bool:
        """Whether the temporary directory of an unfinished save exists."""
        return any(ocp.path.step.TMP_DIR_SUFFIX in name for _, name in self._names())

    def log(self) -> str:
        """Everything the run's processes printed."""
        return (self.directory / "log.txt").read_text()


def _new_run(tmp_path: pathlib.Path, name: str, command: Callable[[pathlib.Path], list[str]],
             launcher: Launcher, nested: bool) -> Run:
    """A Run in tmp_path/name."""
    directory = tmp_path / name
    directory.mkdir()
    return Run(directory, command(directory), launcher, nested)


def _cpu(proc) -> float:
    """The CPU seconds a forked run used (NaN for a plain process, which the zygote did not reap)."""
    return round(getattr(proc, "cpu_s", float("nan")), 2)


def _wait_for(proc, condition, timeout: float = 240.0, poll: float = 0.002):
    """Polls ``condition`` until it holds (its truthy value) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = condition()
        if seen:
            return seen
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("the run neither reached the moment nor ended")


# --- the moments of an interruption: factories of conditions, given the run and its steps at start ---


def lock_taken(run: Run, start: set):
    """The lock file names a new process: the run has started, nothing new is trained yet."""
    lock = run.ck / checkpoint.LOCK_NAME
    holder = lambda: lock.read_text().strip() if lock.exists() else ""
    before = holder()  # a killed holder's pid stays in the file until the next run takes the lock
    return lambda: holder() not in ("", before) and holder()


def new_checkpoint(run: Run, start: set):
    """A checkpoint this process wrote has been finalised: between two saves."""
    return lambda: bool(run.steps() - start)


def during_save(run: Run, start: set):
    """An async save's temporary directory exists."""
    # A save of these tiny states can finish between two polls; then the kill lands just after it.
    def condition():
        """What was seen, or False."""
        if run.saving():
            return "caught a save in progress"
        return bool(run.steps() - start) and "missed the save, killed just after it"
    return condition


def after_delay(seconds: float):
    """A factory: ``seconds`` after this process's first new checkpoint (inside a later chunk or save)."""
    def factory(run: Run, start: set):
        """The condition for one process."""
        seen, began = new_checkpoint(run, start), []

        def condition():
            """True once the delay has passed."""
            if not began and seen():
                began.append(time.monotonic())
            return bool(began) and time.monotonic() - began[0] >= seconds
        return condition
    factory.__doc__ = f"{seconds:.3f} s after a new checkpoint"
    return factory


def metrics_grew(run: Run, start: set):
    """The GAN's metrics log grew: an epoch was written, its checkpoint maybe not yet."""
    path = run.directory / "run" / "metrics.jsonl"
    count = lambda: path.read_bytes().count(b"\n") if path.exists() else 0
    lines = count()
    return lambda: count() > lines


def _damage_newest(run: Run) -> tuple[str, int] | None:
    """Truncates the array files of the newest checkpoint when there is one to fall back on."""
    for directory in reversed(run.checkpoint_dirs()):
        steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
        if len(steps) >= 2:
            for data in (directory / str(steps[-1])).glob("state/**/d/*"):
                data.write_bytes(data.read_bytes()[:10])
            return directory.name, steps[-1]
    return None


# --- reading checkpoints back ---


def _palindrome_abstract(record: dict):
    """The abstract checkpoint of the sweep a record describes."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in record.items() if k in names})
    return sweep_target(config, record["lengths"], record["seeds"], record["epochs"])


def _gan_abstract(record: dict):
    """The abstract checkpoint tree of the GAN run a record describes."""
    return checkpoint_tree(jax.eval_shape(lambda: gan_init_state(from_record(GANConfig, record))))


def _restore(directory: pathlib.Path, abstract: Callable[[dict], object], kind: str,
             step: int | None = None) -> tuple[int, list[bytes]] | None:
    """(step, bytes of every leaf) of the given or the newest checkpoint that restores; None if none does."""
    if not directory.is_dir():
        return None
    manager = checkpoint.open_manager(directory, create=False)
    try:
        steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
        for candidate in steps:
            try:
                _, record = checkpoint.read_config(manager, candidate)
                state, _ = checkpoint.restore(manager, abstract(record), kind=kind, step=candidate)
            except UserError:  # the damaged one: the run skips it the same way
                continue
            leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
            return candidate, [leaf.dtype.str.encode() + str(leaf.shape).encode() + leaf.tobytes()
                               for leaf in leaves]
    finally:
        manager.close()
    return None


def _resume_points(run: Run, abstract, kind: str) -> dict[str, tuple[int, list[bytes]]]:
    """For each checkpoint folder, the newest checkpoint that restores (what the next start resumes from)."""
    points = {}
    for directory in run.checkpoint_dirs():
        found = _restore(directory, abstract, kind)
        if found is not None:
            points[directory.name if run.nested else "ck"] = found
    return points


def _start_reference(reference: Run):
    """Starts the uninterrupted run and waits until it has compiled (its first checkpoint exists).

    The chain starts after that, so that its processes load the cached programs instead of
    compiling them a second time, while the reference finishes beside them.
    """
    proc = reference.start()
    _wait_for(proc, reference.steps)
    return proc


def _interrupt_chain(chain: Run, moments, abstract, kind: str, damage_before: int) -> tuple[list, list]:
    """Starts ``chain`` once per moment and interrupts it there; returns (what happened, resume points).

    The newest checkpoint is damaged before start ``damage_before``.
    """
    happened, points, damaged = [], [], None
    for index, (name, sig, factory) in enumerate(moments):
        if index >= damage_before and damaged is None:
            damaged = _damage_newest(chain)
        start = chain.steps()
        proc = chain.start()
        reached = _wait_for(proc, factory(chain, start))
        if reached:
            proc.send_signal(sig)
        code = proc.wait(timeout=240)
        happened.append({"moment": name, "signal": signal.Signals(sig).name,
                         "reached": reached if isinstance(reached, str) else bool(reached), "exit": code,
                         "damaged": damaged if index == damage_before else None,
                         "cpu_s": _cpu(proc)})
        if reached and sig == signal.SIGKILL:
            assert code == -signal.SIGKILL, (name, code, chain.log()[-2000:])
        points.append(_resume_points(chain, abstract, kind))
    assert damaged is not None, "no checkpoint was damaged on the way"
    return happened, points


def _compare_resume_points(points: list, reference: Run, abstract, kind: str) -> tuple[int, int]:
    """(checked, equal): each interruption's resume points against the uninterrupted run's checkpoints."""
    checked = equal = 0
    for after_trial in points:
        for folder, (step, leaves) in after_trial.items():
            directory = reference.ck / folder if reference.nested else reference.ck
            found = _restore(directory, abstract, kind, step)
            checked += 1
            equal += found is not None and found[1] == leaves
    return checked, equal


# --- palindrome ---


def _palindrome_command(directory: pathlib.Path, keep: str = "2") -> list[str]:
    """The palindrome command of one run: one RNN sweep over T=3, 4 with one seed, 6 chunks of 2 epochs."""
    return [sys.executable, "-m", "experiments.palindrome", "--models", "rnn", "--lengths", "3", "4",
            "--seeds", "1", "--epochs", str(PAL_EPOCHS), "--chunk-epochs", str(PAL_CHUNK), "--hidden", "8",
            "--num-examples", "64", "--batch-size", "16", "--keep-checkpoints", keep,
            "--workdir", str(directory / "run"), "--checkpoint-dir", str(directory / "ck")]


def test_palindrome_killed_and_restarted_ends_exactly_like_an_uninterrupted_run(tmp_path, launcher):
    rng = np.random.default_rng(6)  # the random moments
    chain = _new_run(tmp_path, "chain", _palindrome_command, launcher, nested=True)
    straight = _new_run(tmp_path, "straight", lambda d: _palindrome_command(d, KEEP_ALL), launcher,
                        nested=True)
    reference = _start_reference(straight)
    moments = [("during an async save", signal.SIGKILL, during_save),
               ("startup, lock just taken", signal.SIGKILL, lock_taken),
               ("SIGTERM after a new checkpoint", signal.SIGTERM, new_checkpoint),
               ("a new checkpoint just finished", signal.SIGKILL, new_checkpoint),
               *[(f"random: {d:.3f} s after a new checkpoint", signal.SIGKILL, after_delay(d))
                 for d in rng.uniform(0.0, 0.15, size=1)]]
    happened, points = _interrupt_chain(chain, moments, _palindrome_abstract, CHECKPOINT_KIND,
                                        damage_before=4)
    final = chain.start()
    assert final.wait(timeout=240) == 0, chain.log()[-3000:]
    assert reference.wait(timeout=240) == 0, straight.log()[-3000:]
    log = chain.log()

    # SIGTERM: a checkpoint at the end of the chunk, exit 143, and the next start resumes there.
    term = happened[2]
    assert term["exit"] == 128 + signal.SIGTERM, (term, log[-3000:])
    stopped = re.findall(r"stopped: SIGTERM received: saved rnn/scalar at epoch (\d+) in ", log)
    assert len(stopped) == 1, log[-3000:]
    epoch = int(stopped[0])
    assert f"rnn/scalar: resuming at epoch {epoch} of {PAL_EPOCHS} (checkpoint in " in log
    # The damaged checkpoint: a warning, skipped, set aside (not deleted).
    assert "cannot be restored" in log and "is skipped" in log
    assert (chain.ck / "rnn-scalar" / checkpoint.DAMAGED_DIR).is_dir()

    checked, equal = _compare_resume_points(points, straight, _palindrome_abstract, CHECKPOINT_KIND)
    a = _restore(straight.ck / "rnn-scalar", _palindrome_abstract, CHECKPOINT_KIND)
    b = _restore(chain.ck / "rnn-scalar", _palindrome_abstract, CHECKPOINT_KIND)
    final_equal = a is not None and b is not None and a[0] == b[0] == PAL_EPOCHS and a[1] == b[1]
    print(f"\npalindrome: {len(happened)} interrupted starts ({json.dumps(happened)}); resume points "
          f"equal to the uninterrupted run: {equal} of {checked}; final state, optimiser state and "
          f"metrics equal: {final_equal}; CPU seconds of the uninterrupted run {_cpu(reference)}, the "
          f"last start {_cpu(final)}")
    assert sum(1 for h in happened if h["reached"] and h["signal"] == "SIGKILL") >= 4, happened
    assert checked >= 3 and equal == checked
    assert final_equal
    assert "Traceback" not in log

    # The outputs: the same results, summary and figures.
    results = [json.loads((r.directory / "run" / "results.json").read_text()) for r in (straight, chain)]
    assert results[0] == results[1]
    for name in ("summary.md", "curves_T3_scalar.png", "curves_T4_scalar.png", "final_accuracy.png"):
        paths = [r.directory / "run" / name for r in (straight, chain)]
        assert paths[0].read_bytes() == paths[1].read_bytes(), name


# --- GAN ---


def _write_idx(folder: pathlib.Path, count: int) -> pathlib.Path:
    """A tiny IDX training split of random 28x28 images (loads in milliseconds, unlike the digits)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(
        np.array([2051, count, 28, 28], ">u4").tobytes() + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(
        np.array([2049, count], ">u4").tobytes() + labels.tobytes())
    return folder


def _gan_command(data: pathlib.Path, keep: str = "2"):
    """A factory of the train_gan command of one run (2 steps an epoch, a checkpoint every epoch)."""
    def command(directory: pathlib.Path) -> list[str]:
        """The command writing into directory/{run,ck}."""
        return [sys.executable, "-m", "experiments.train_gan", "--dataset", f"idx:{data}",
                "--batch-size", str(GAN_BATCH), "--epochs", str(GAN_EPOCHS), "--checkpoint-every", "1",
                "--keep-checkpoints", keep,
                "--sample-every", "8", "--workdir", str(directory / "run"),
                "--checkpoint-dir", str(directory / "ck")]
    return command


def _gan_scenario(base: pathlib.Path, launcher: Launcher) -> str:
    """The GAN's interrupted chain beside its uninterrupted run, with every check; returns a summary."""
    data = _write_idx(base / "data", GAN_IMAGES)
    straight = _new_run(base, "straight", _gan_command(data, KEEP_ALL), launcher, nested=False)
    chain = _new_run(base, "chain", _gan_command(data), launcher, nested=False)
    reference = _start_reference(straight)
    rng = np.random.default_rng(7)
    moments = [("a temporary directory of an async save exists", signal.SIGKILL, during_save),
               ("startup, lock just taken", signal.SIGKILL, lock_taken),
               ("an epoch logged, before or during its save", signal.SIGKILL, metrics_grew),
               ("SIGTERM after a new checkpoint", signal.SIGTERM, new_checkpoint),
               ("a new checkpoint just finished", signal.SIGKILL, new_checkpoint),
               *[(f"random: {d:.3f} s after a new checkpoint", signal.SIGKILL, after_delay(d))
                 for d in rng.uniform(0.0, 0.3, size=1)]]
    happened, points = _interrupt_chain(chain, moments, _gan_abstract, GAN_KIND, damage_before=5)
    final = chain.start()
    assert final.wait(timeout=240) == 0, chain.log()[-3000:]
    assert reference.wait(timeout=240) == 0, straight.log()[-3000:]
    log = chain.log()

    # SIGTERM: a checkpoint at the end of the epoch, exit 143, and the next start resumes there.
    assert happened[3]["exit"] == 128 + signal.SIGTERM, (happened[3], log[-3000:])
    stopped = re.findall(r"stopped: SIGTERM received: saved a checkpoint at step (\d+) ", log)
    assert len(stopped) == 1, log[-3000:]
    resumed = rf"gan: resuming at epoch \d+ of \d+ \(step {stopped[0]}, checkpoint in "
    assert re.search(resumed, log), log[-3000:]
    assert "cannot be restored" in log and "is skipped" in log
    assert (chain.ck / checkpoint.DAMAGED_DIR).is_dir()  # set aside, not deleted

    checked, equal = _compare_resume_points(points, straight, _gan_abstract, GAN_KIND)
    final_steps = GAN_EPOCHS * GAN_STEPS_PER_EPOCH
    a, b = _restore(straight.ck, _gan_abstract, GAN_KIND), _restore(chain.ck, _gan_abstract, GAN_KIND)
    final_equal = a is not None and b is not None and a[0] == b[0] == final_steps and a[1] == b[1]
    texts = [(r.directory / "run" / "metrics.jsonl").read_text() for r in (straight, chain)]
    summary = (f"gan: {len(happened)} interrupted starts ({json.dumps(happened)}); resume points equal "
               f"to the uninterrupted run: {equal} of {checked}; final state, optimiser state and metrics "
               f"log equal: {final_equal and texts[0] == texts[1]}; CPU seconds of the uninterrupted run "
               f"{_cpu(reference)}, the last start {_cpu(final)}")
    assert sum(1 for h in happened if h["reached"] and h["signal"] == "SIGKILL") >= 5, summary
    assert checked >= 3 and equal == checked, summary
    assert final_equal and "Traceback" not in log, summary
    assert texts[0] == texts[1] and texts[1].endswith("\n")
    steps = [r["step"] for r in files.read_jsonl(chain.directory / "run" / "metrics.jsonl")]
    assert steps == list(range(1, final_steps + 1))  # no torn line, no duplicate step
    grids = [sorted(p.name for p in (r.directory / "run" / "samples").glob("*.png"))
             for r in (straight, chain)]
    assert grids[0] == grids[1]
    return summary


@pytest.fixture(scope="module", autouse=True)
def gan_scenario(tmp_path_factory, launcher):
    """Runs ``_gan_scenario`` in a thread from the start of the module, beside the palindrome test.

    The two experiments' processes then share the two cores; ``test_gan_...`` waits for the
    thread and reports its outcome. Yields the thread's outcome holder.
    """
    outcome: dict = {}

    def work():
        """The scenario; its summary or its exception go into ``outcome``."""
        try:
            outcome["summary"] = _gan_scenario(tmp_path_factory.mktemp("gan"), launcher)
        except BaseException as err:  # re-raised in the test
            outcome["error"] = err

    thread = threading.Thread(target=work, name="gan-scenario", daemon=True)
    thread.start()
    outcome["thread"] = thread
    yield outcome
    thread.join(timeout=600)


def test_gan_killed_and_restarted_ends_exactly_like_an_uninterrupted_run(gan_scenario):
    gan_scenario["thread"].join(timeout=600)
    assert not gan_scenario["thread"].is_alive(), "the GAN scenario did not end in 10 minutes"
    if "error" in gan_scenario:
        raise gan_scenario["error"]
    print("\n" + gan_scenario["summary"])


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--zygote"]:
        sys.path.insert(0, str(ROOT))  # as python -m from the repository root
        _zygote()
    else:
        sys.exit(pytest.main([__file__, "-s"]))

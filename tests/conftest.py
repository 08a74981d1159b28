"""Shared pytest settings: unoptimised compiles, the ``slow`` marker, the environment of CLI subprocesses,
and where the real MNIST test split is (``real_mnist_dir``, the ``mnist_dir`` fixtures)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile

import pytest

# The suite compiles hundreds of tiny programs, so XLA's optimisations are off
# (``jax_disable_most_optimizations``: the suite runs about 1.5x faster on 2 cores) and XLA:CPU
# emits its fusions the older way (``--xla_cpu_use_fusion_emitters=false``: compiling then takes
# about half the time); every comparison in the suite compiles both of its sides alike. Set before
# JAX starts its backend, they hold for this process and for every process the tests start.
# JAXGAN_TEST_OPTIMIZED=1 keeps XLA's defaults.
FAST_COMPILE_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"
if os.environ.get("JAXGAN_TEST_OPTIMIZED") != "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_XLA_FLAG}".strip()

# One persistent compilation cache for the whole test run: its pytest-xdist workers and every process
# the tests start compile each program once between them (the folder is this run's own, under the
# temporary directory; a user's JAX_COMPILATION_CACHE_DIR wins).
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"jaxgan-tests-{_RUN}")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_sessionfinish(session, exitstatus):
    """The run's own compilation cache goes when the run ends (on the controller, not a worker)."""
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_configure(config):
    """Registers the markers this suite uses."""
    config.addinivalue_line("markers", "slow: a test of a minute or more (left out by -m 'not slow')")


# The files that take longest (seconds of one worker, from `pytest --durations=0` on 2 CPU cores),
# longest first. pytest-xdist (--dist loadfile) hands files to workers in collection order, so
# these go first and the short files fill the gaps at the end, instead of one worker running a
# long file alone while the other idles (longest-processing-time-first scheduling).
LONGEST_FIRST = ("test_notebook.py", "test_faults.py", "test_gan.py", "test_palindrome_cli.py",
                 "test_workdir.py", "test_api_docs.py", "test_device_check.py", "test_full_disk.py",
                 "test_gan_sweep.py", "test_gan_sweep_cli.py",
                 "test_reproduce.py", "test_classifier_scores.py", "test_palindrome_train.py",
                 "test_multihost.py", "test_parallel.py", "test_checkpoint_faults.py",
                 "test_interpolate_cli.py", "test_recurrent.py", "test_legacy_checkpoints.py")


def pytest_collection_modifyitems(config, items):
    """Orders test files longest first (``LONGEST_FIRST``; the others after, as collected); the
    tests within a file keep their order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept within


@contextlib.contextmanager
def _xla_optimizations_on():
    """XLA's optimisations on for what is compiled inside (jax_disable_most_optimizations is read at
    each compile), restored after."""
    import jax

    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture(scope="session")
def xla_optimized():
    """A context manager for the few tests whose time is running, not compiling (hundreds of steps of
    a real model): their programs are compiled with XLA's optimisations, which run them about twice
    as fast on CPU (the classifier's two epochs: 16 s -> 8 s)."""
    return _xla_optimizations_on


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """The environment for CLI subprocesses: CPU (unless $JAXGAN_TEST_PLATFORMS says otherwise), and
    the test run's persistent compilation cache.

    Every program is compiled by the first process that needs it and loaded from the cache by
    the others, so a run that is killed and restarted does not pay for compiling again (the
    cache settings are in ``os.environ``, set above: 0 for both of JAX's thresholds caches every
    program, however small).
    """
    # JAXGAN_TEST_PLATFORMS="" (the accelerator check sets it) lets them use what JAX sees.
    platforms = os.environ.get("JAXGAN_TEST_PLATFORMS", "cpu")
    return {**os.environ, **({"JAX_PLATFORMS": platforms} if platforms else {}),
            "PYTHONUNBUFFERED": "1"}  # a killed process's last lines reach its log


# The real MNIST test split: $JAXGAN_MNIST_DIR when set (it wins, even if it lacks the files),
# else shared/data/mnist beside the repository, where CI puts it (never copied into the repo).
MNIST_ENV = "JAXGAN_MNIST_DIR"
SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
MNIST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_SKIP_REASON = (f"no real MNIST test split: set {MNIST_ENV} to a folder holding "
                     f"{MNIST_FILES[0]}[.gz] and {MNIST_FILES[1]}[.gz], or put those files in "
                     f"../shared/data/mnist beside the repository ({MNIST_ENV} wins when set)")


def real_mnist_dir() -> pathlib.Path | None:
    """The folder holding MNIST's t10k images and labels (.gz or not): $JAXGAN_MNIST_DIR when set, else
    ../shared/data/mnist; None when the chosen folder lacks either file."""
    given = os.environ.get(MNIST_ENV)
    folder = pathlib.Path(given).expanduser() if given else SHARED_MNIST
    if all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in MNIST_FILES):
        return folder
    return None


@pytest.fixture(scope="session")
def mnist_dir_or_none() -> pathlib.Path | None:
    """The real MNIST test split's folder, or None (for tests that fall back to other images)."""
    return real_mnist_dir()


@pytest.fixture(scope="session")
def mnist_dir(mnist_dir_or_none) -> pathlib.Path:
    """The real MNIST test split's folder, or a skip that says how to provide it."""
    if mnist_dir_or_none is None:
        pytest.skip(MNIST_SKIP_REASON)
    return mnist_dir_or_none

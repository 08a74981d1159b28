"""Shared pytest settings: unoptimised compiles, the ``slow`` marker, the environment of CLI subprocesses."""

from __future__ import annotations

import os

import pytest

# Compiling is most of this suite's time and its programs are tiny, so XLA's optimisations are
# off (``jax_disable_most_optimizations``): the suite runs about 1.5x faster on 2 cores, and
# every comparison in it compiles both of its sides alike. Set before JAX is imported, it holds
# for this process and for every process the tests start. JAXGAN_TEST_OPTIMIZED=1 keeps them on.
if os.environ.get("JAXGAN_TEST_OPTIMIZED") != "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


def pytest_configure(config):
    """Registers the markers this suite uses."""
    config.addinivalue_line("markers", "slow: a test of a minute or more (left out by -m 'not slow')")


@pytest.fixture(scope="session")
def subprocess_env(tmp_path_factory) -> dict[str, str]:
    """The environment for CLI subprocesses: CPU, and one persistent compilation cache per test session.

    Every program is compiled by the first process that needs it and loaded from the cache by
    the others, so a run that is killed and restarted does not pay for compiling again. The
    two thresholds are JAX's ``jax_persistent_cache_min_compile_time_secs`` and
    ``jax_persistent_cache_min_entry_size_bytes``: 0 caches every program, however small.
    """
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            "PYTHONUNBUFFERED": "1"}  # a killed process's last lines reach its log

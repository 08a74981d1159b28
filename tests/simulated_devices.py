"""The environment of a worker process with simulated CPU devices (shared by the parallel tests)."""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker_env(devices: int) -> dict:
    """This environment with ``devices`` simulated CPU devices and fast compiles.

    XLA_FLAGS must be set before JAX starts, hence a fresh process; optimisations are off because
    compiling is nearly all of these tests' time and both sides of each comparison compile alike.
    """
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1", PYTHONPATH=str(ROOT))
    return env

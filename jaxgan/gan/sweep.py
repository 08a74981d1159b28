"""Part 2, many GANs in one program: runs stacked on a leading axis, one epoch vmapped over them.

A sweep is a ``GANState`` whose every leaf has a leading run axis R (``init_sweep``): each run
has its own seed and its own traced ``Hyperparameters`` (learning rate, Adam's betas, EMA decay,
discriminator loss), while the static ``EpochConfig`` and the architecture are shared. One jitted
program (``sweep_epoch_function``) trains every run an epoch on the same images, each with its
own shuffle and noise, and returns per-run metrics and grids; ``score_sweep`` scores every run.
Each run equals the same run trained alone, to float rounding (tests/test_gan_sweep.py).

With several devices (``jaxgan.runtime.parallel``), each device trains its own block of runs
(``shard_map``, no communication), as Part 1's sweep does. A host loop checkpoints the stacked
state as it is, or one run at a time with ``unstack`` (and ``checkpoint_tree``), since a run of a
sweep is a plain one-run ``GANState``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jaxgan.configs.gan import GANConfig
from jaxgan.gan.steps import (
    EpochConfig,
    GANState,
    grid_noise,
    hyperparameters,
    init_networks,
    score_generators,
    score_noise,
    train_epoch,
)
from jaxgan.runtime import parallel
from jaxgan.runtime.parallel import STRATEGIES as STRATEGIES  # the strategies a sweep takes
from jaxgan.runtime.parallel import resolve_strategy

# What may differ between the runs of one sweep: every other setting shapes the shared program.
PER_RUN = ("seed", "learning_rate", "b1", "b2", "ema_decay", "d_loss")
# Settings that do not reach the program (a host loop's business), so runs may differ in them too.
HOST_ONLY = ("epochs", "checkpoint_every", "keep_checkpoints")


def check_sweep(configs: Sequence[GANConfig]) -> EpochConfig:
    """The sweep's shared ``EpochConfig``; ValueError unless the configs differ only in ``PER_RUN``
    (and host-only) settings."""
    if not configs:
        raise ValueError("a sweep needs at least one run")
    first = configs[0]
    for config in configs:
        config.validate()
        for name in first.__dataclass_fields__:
            if name not in PER_RUN + HOST_ONLY and getattr(config, name) != getattr(first, name):
                raise ValueError(f"the runs of one sweep share {name} (one compiled program), but one has "
                                 f"{getattr(config, name)!r} and another {getattr(first, name)!r}")
    return EpochConfig.of(first)


def stack(states: Sequence[GANState]) -> GANState:
    """One-run states stacked on a new leading run axis [R, ...]."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def unstack(states: GANState, run: int) -> GANState:
    """Run ``run`` of a stacked state: a plain one-run GANState (checkpoint it, score it, sample it)."""
    return jax.tree.map(lambda leaf: leaf[run], states)


def run_count(states: GANState) -> int:
    """R, the length of the leading run axis."""
    return int(jax.tree.leaves(states)[0].shape[0])


def init_sweep(configs: Sequence[GANConfig]) -> GANState:
    """Fresh runs of ``configs`` stacked [R, ...]; run r equals ``init_state(configs[r])``."""
    check_sweep(configs)
    first = configs[0]
    keys = jnp.stack([jax.random.PRNGKey(config.seed) for config in configs])
    init = functools.partial(init_networks, latent_dim=first.latent_dim, gen_features=first.gen_features,
                             disc_features=first.disc_features)
    states = jax.jit(jax.vmap(init))(keys)  # random draws under vmap equal the draws of each key alone
    states = states.replace(hparams=stack([hyperparameters(config) for config in configs]))
    return jax.device_put(states, jax.local_devices()[0])


def _over_runs(fn: Callable, mesh: Mesh | None, in_specs: tuple) -> Callable:
    """``fn`` as is, or per device with ``mesh``: each device applies it to its own block of runs.

    ``in_specs`` says which arguments carry the run axis (``PartitionSpec(AXIS)``) and which every
    device holds whole (``PartitionSpec()``); every output carries the run axis.
    """
    if not parallel.is_parallel(mesh):
        return fn
    # check_vma=False: runs never talk, so there is nothing to check (as in Part 1's sweep).
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec(parallel.AXIS),
                         check_vma=False)


def sweep_epoch(states: GANState, images: jax.Array, noise: jax.Array, config: EpochConfig,
                strategy: str = "vmap",
                mesh: Mesh | None = None) -> tuple[GANState, dict, jax.Array, jax.Array]:
    """One epoch of every run: states [R, ...], images uint8 [N, 28, 28] (shared), grid noise [R, 25, latent].

    Returns the states, metrics {name: [R, steps]}, grids [R, slots, 25, 784] and their steps
    [R, slots], each run's as ``train_epoch`` returns them alone. Every run must be at the same
    step (a sweep starts and stops its runs together), which decides where grids fall.

    ``vmap`` batches the runs' products together (what an accelerator wants; batched matmuls round
    differently from one run's, so runs equal their separate runs to float rounding); ``map``
    trains them one after another inside the program, each with the one-run program's operations:
    bit for bit its separate run at the sizes tested, though XLA may fuse a run's arithmetic
    differently inside the loop at other sizes (at batch 32 and latent 16 the weights were 1.7e-4
    apart after 12 steps), so in general to float rounding. ``benchmarks.gan_sweep`` measures both.
    """
    runs = PartitionSpec(parallel.AXIS)

    def block(states, images, noise):
        """The runs of one device (or all of them), batched or in turn."""
        first_step = states.step[0]  # outside the vmap, so the grid's cond stays a cond
        epoch = lambda state, run_noise: train_epoch(state, images, run_noise, config, first_step=first_step)
        if strategy == "map":
            return jax.lax.map(lambda pair: epoch(*pair), (states, noise))
        return jax.vmap(epoch)(states, noise)

    return _over_runs(block, mesh, (runs, PartitionSpec(), runs))(states, images, noise)


def sweep_epoch_function(config: EpochConfig, strategy: str = "auto", mesh: Mesh | None = None) -> Callable:
    """``sweep_epoch(states, images, noise)`` of ``config`` and ``strategy`` jitted, states donated; cached.

    With a ``mesh`` of several devices the run axis (a multiple of its size) is split over it: place
    the states and noise with ``parallel.put(..., parallel.runs(mesh))`` and the images replicated.
    """
    mesh = mesh if parallel.is_parallel(mesh) else None
    return _sweep_epoch_function(config, resolve_strategy(strategy), mesh)


@functools.cache
def _sweep_epoch_function(config: EpochConfig, strategy: str, mesh: Mesh | None) -> Callable:
    """``sweep_epoch_function`` behind its cache."""
    epoch = functools.partial(sweep_epoch, config=config, strategy=strategy, mesh=mesh)
    return jax.jit(epoch, donate_argnums=0)


def place(states: GANState, images: np.ndarray, noise: jax.Array, mesh: Mesh | None
          ) -> tuple[GANState, jax.Array, jax.Array]:
    """(states, images, noise) where ``sweep_epoch_function(config, mesh)`` wants them: on the default
    device, or with several devices the runs split over ``mesh`` and the images whole on each."""
    if not parallel.is_parallel(mesh):
        return states, jax.device_put(images), noise
    count = run_count(states)
    if count % mesh.size:
        raise ValueError(f"{count} runs cannot be split evenly over {mesh.size} devices; "
                         f"sweep a multiple of {mesh.size} runs")
    states, noise = parallel.put((states, noise), parallel.runs(mesh))
    return states, parallel.put(images, parallel.replicated(mesh)), noise


def sweep_grid_noise(states: GANState, latent_dim: int) -> jax.Array:
    """Each run's fixed sample noise [R, 25, latent] (``grid_noise`` of each run)."""
    return jax.vmap(functools.partial(grid_noise, latent_dim=latent_dim))(states)


def sweep_score_noise(states: GANState, num_samples: int) -> jax.Array:
    """Each run's fixed scoring noise [R, num_samples, latent] (``score_noise`` of each run)."""
    return jax.vmap(functools.partial(score_noise, num_samples=num_samples))(states)


@functools.partial(jax.jit, static_argnames=("weights",))
def score_sweep(states: GANState, noise: jax.Array, classifier_variables: dict, reference_features: jax.Array,
                weights: tuple[str, ...] = ("raw", "ema")) -> dict[str, dict[str, jax.Array]]:
    """IS and FID of every run: ``{weights: {score: [R]}}`` from noise [R, M, latent] against one
    reference [M, F] (``score_generators`` of each run; with ``weights`` ("raw", "ema") a run
    without an EMA scores its raw generator twice)."""
    score = functools.partial(score_generators, classifier_variables=classifier_variables,
                              reference_features=reference_features, weights=weights)
    return jax.vmap(score)(states, noise)


def summarize(values: Sequence[float], settings: Sequence[tuple], lower_is_better: bool = True) -> list[dict]:
    """Mean, standard deviation (ddof 1; 0 for one run), count and best run of ``values`` [R] per distinct
    setting (``settings[r]`` a hashable tuple per run), in first-seen order; the best is the lowest
    (FID) or, with ``lower_is_better`` False, the highest (IS)."""
    groups: dict[tuple, list[int]] = {}
    for r, setting in enumerate(settings):
        groups.setdefault(setting, []).append(r)
    rows = []
    for setting, members in groups.items():
        chosen = np.asarray([values[r] for r in members], np.float64)
        best = members[int(np.argmin(chosen) if lower_is_better else np.argmax(chosen))]
        rows.append({"setting": setting, "runs": len(members), "mean": float(chosen.mean()),
                     "std": float(chosen.std(ddof=1)) if len(members) > 1 else 0.0,
                     "best_run": best, "best": float(values[best])})
    return rows

"""Part 2 training: the GAN state, pure ``gen_step``/``disc_step``/``gan_step``, a scanned epoch, and the run.

Data flow: ``train`` puts the uint8 image set [N, 28, 28] on the device once, restores or
initialises a ``GANState``, and calls one jitted ``train_epoch`` per epoch. Inside it a
``lax.scan`` shuffles, gathers and scales batches, takes one ``gan_step`` per batch and,
whenever the step count is a multiple of ``sample_every``, draws the 5x5 grid of the fixed
noise. The host reads each epoch's per-step metrics and grids once, appends them to
``metrics.jsonl`` and ``samples/``, and checkpoints every ``checkpoint_every`` epochs; given a
classifier ``Reference``, it also scores the raw and EMA generators there (``scores.jsonl``).

EMA: every step also updates an exponential moving average of the generator's weights
(``GANState.ema_params``, bias-corrected as Adam's moments are, so it is the decay-weighted mean of
the weights after every update so far) and that averaged generator's own BatchNorm running
statistics (``ema_batch_stats``), from a train-mode forward pass of the EMA weights on the step's
noise. The EMA never feeds back into training: the raw weights follow the same path with or without it.

Randomness: one run key (``GANState.key``, raw uint32 [2]) never changes during the run;
every draw folds a stream id and an index into it (shuffle: epoch; noise: step; grid and
score noise: none), so a run resumed from a checkpoint draws exactly the numbers an unbroken run draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state
from jax.sharding import Mesh

from jaxgan import checkpoint, jsonl, parallel
from jaxgan.errors import UserError
from jaxgan.models.gan import DISC_FEATURES, GEN_FEATURES, IMAGE_SHAPE, IMAGE_SIZE, Discriminator, Generator
from jaxgan.scores import Reference, classifier_scores_of_sets
from jaxgan.signals import Interrupted
from jaxgan.signals import deferred_signals as _deferred_signals

KIND = "gan"
METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "fake_called_real",
           "d_grad_norm", "g_grad_norm", "d_param_norm", "g_param_norm")
GRID_SIZE = 25  # a 5x5 grid of samples
# Settings a checkpoint must share with the run that resumes it (the rest, such as the
# number of epochs or how often to sample, may change between the two).
# A checkpoint written before the EMA existed records no ema_decay, so resuming it is refused by
# this check; restore_generator still reads its raw generator.
MATCH_KEYS = ("latent_dim", "gen_features", "disc_features", "learning_rate", "b1", "b2",
              "batch_size", "seed", "ema_decay")
WEIGHTS = ("ema", "raw")  # which generator restore_generator returns
_SHUFFLE_STREAM, _NOISE_STREAM, _GRID_STREAM, _SCORE_STREAM = 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """The run's settings (the study's by default)."""

    latent_dim: int = 100
    gen_features: tuple[int, ...] = GEN_FEATURES
    disc_features: tuple[int, ...] = DISC_FEATURES
    learning_rate: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    batch_size: int = 64
    epochs: int = 200
    sample_every: int = 500
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    seed: int = 0
    # Decay of the EMA of the generator's weights (0 disables it: the EMA is then the raw generator).
    ema_decay: float = 0.999

    def record(self) -> dict:
        """The config as JSON-ready fields, with ``kind``; stored beside every checkpoint."""
        fields = dataclasses.asdict(self)
        fields["gen_features"] = list(self.gen_features)
        fields["disc_features"] = list(self.disc_features)
        return {"kind": KIND, **fields}

    @classmethod
    def from_record(cls, record: dict) -> GANConfig:
        """Rebuilds a config from ``record()`` output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in record.items() if k in names}
        for key in ("gen_features", "disc_features"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)


class GenState(train_state.TrainState):
    """The generator's TrainState plus its BatchNorm running statistics."""

    batch_stats: Any = None


class GANState(struct.PyTreeNode):
    """Everything a run needs to continue: both TrainStates, the generator's EMA, the step count, the run key.

    ``step`` is int32 [] (updates done); ``key`` is the run's raw uint32 [2] PRNG key;
    ``ema_params`` and ``ema_batch_stats`` have the shapes of the generator's params and batch
    stats. ``ema_decay`` is static (like a TrainState's optimiser): it picks the compiled step.
    """

    gen: GenState
    disc: train_state.TrainState
    step: jax.Array
    key: jax.Array
    ema_params: Any
    ema_batch_stats: Any
    ema_decay: float = struct.field(pytree_node=False, default=0.0)


class NonFiniteLoss(UserError):
    """Training produced a NaN or infinity; the run stops without saving that state."""


def make_models(config: GANConfig) -> tuple[Generator, Discriminator]:
    """The two modules for ``config``; the same objects for the same architecture."""
    return _models(config.gen_features, config.disc_features)


def make_optimizer(config: GANConfig) -> optax.GradientTransformation:
    """Adam as in PyTorch (eps 1e-8 outside the square root); the same object for the same settings."""
    return _adam(config.learning_rate, config.b1, config.b2)


# The modules and the optimiser are static fields of the TrainStates, so they belong to the
# jit cache key: caching them on exactly the settings they depend on lets every run of one
# architecture in a process (say, a run and its resume) share one compiled epoch.
@functools.cache
def _models(gen_features: tuple[int, ...], disc_features: tuple[int, ...]) -> tuple[Generator, Discriminator]:
    """Generator and Discriminator of these layer sizes (cached)."""
    return Generator(features=gen_features), Discriminator(features=disc_features)


@functools.cache
def _adam(learning_rate: float, b1: float, b2: float) -> optax.GradientTransformation:
    """optax.adam with PyTorch's eps (cached)."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=1e-8)


def _key_for(run_key: jax.Array, stream: int, index: jax.Array | int = 0) -> jax.Array:
    """The key of draw ``index`` in ``stream``: a pure function of the run key, so resumes redraw it."""
    return jax.random.fold_in(jax.random.fold_in(run_key, stream), index)


def init_state(config: GANConfig) -> GANState:
    """A fresh GANState from ``config.seed`` (PyTorch-style initialisation, running stats 0 and 1)."""
    init = _init_function(config.latent_dim, config.gen_features, config.disc_features,
                          config.learning_rate, config.b1, config.b2)
    # The decay is set outside the jitted initialiser, which then serves every decay.
    state = init(jax.random.PRNGKey(config.seed)).replace(ema_decay=float(config.ema_decay))
    # Committed to the default device, as a state restored by Orbax is: jit caches tell
    # committed from uncommitted arrays, and a fresh run and its resume should share one.
    # (This process's own first device: with several processes, jax.devices()[0] is process 0's.)
    return jax.device_put(state, jax.local_devices()[0])


@functools.cache
def _init_function(latent_dim: int, gen_features: tuple[int, ...], disc_features: tuple[int, ...],
                   learning_rate: float, b1: float, b2: float) -> Callable[[jax.Array], GANState]:
    """The jitted initialiser of one architecture and optimiser (op by op it takes many seconds)."""
    generator, discriminator = _models(gen_features, disc_features)
    tx = _adam(learning_rate, b1, b2)

    def init(seed_key: jax.Array) -> GANState:
        """Initialises both networks and optimisers from one seed key."""
        gen_init_key, disc_init_key, run_key = jax.random.split(seed_key, 3)
        gen_vars = generator.init(gen_init_key, jnp.zeros((1, latent_dim)), train=False)
        disc_vars = discriminator.init(disc_init_key, jnp.zeros((1, IMAGE_SIZE)))
        # TrainState.create counts steps from a Python 0; an int32 array instead keeps the
        # state's types equal before and after a step, so the jitted step compiles once.
        gen = GenState.create(apply_fn=generator.apply, params=gen_vars["params"], tx=tx,
                              batch_stats=gen_vars["batch_stats"]).replace(step=jnp.zeros((), jnp.int32))
        disc = train_state.TrainState.create(apply_fn=discriminator.apply, params=disc_vars["params"],
                                             tx=tx).replace(step=jnp.zeros((), jnp.int32))
        # The EMA starts as a copy of the initial generator (bias correction gives it no weight
        # after the first update).
        return GANState(gen=gen, disc=disc, step=jnp.zeros((), jnp.int32), key=run_key,
                        ema_params=gen.params, ema_batch_stats=gen.batch_stats)

    return jax.jit(init)


def ema_weight(step: jax.Array, decay: float) -> jax.Array:
    """The weight of the old EMA in update number ``step`` (1, 2, ...): d (1 - d^(step-1)) / (1 - d^step).

    With it, ``ema = w * ema + (1 - w) * params`` is the mean of the parameters after updates
    1..step weighted by d^(step - s), normalised (Adam's bias correction): 0 at step 1, -> d later.
    """
    t = jnp.asarray(step, jnp.float32)
    return decay * (1.0 - decay ** (t - 1.0)) / (1.0 - decay ** t)


def update_ema(state: GANState, noise: jax.Array) -> GANState:
    """Moves the EMA towards the generator after update ``state.step``; noise [B, latent] is that step's.

    The EMA's BatchNorm statistics are its own: a train-mode forward pass of the new EMA weights
    on the step's noise updates them with PyTorch's momentum, as the raw generator's are updated.
    """
    if state.ema_decay == 0.0:  # disabled: the EMA is the raw generator, and costs nothing
        return state.replace(ema_params=state.gen.params, ema_batch_stats=state.gen.batch_stats)
    weight = ema_weight(state.step, state.ema_decay)
    ema_params = jax.tree.map(lambda ema, new: weight * ema + (1.0 - weight) * new,
                              state.ema_params, state.gen.params)
    _, updates = state.gen.apply_fn({"params": ema_params, "batch_stats": state.ema_batch_stats}, noise,
                                    train=True, mutable=["batch_stats"])
    return state.replace(ema_params=ema_params, ema_batch_stats=updates["batch_stats"])


def generator_variables(state: GANState, weights: str = "raw") -> dict:
    """``{"params", "batch_stats"}`` of the raw generator or (``weights="ema"``) of its EMA."""
    if weights == "ema":
        return {"params": state.ema_params, "batch_stats": state.ema_batch_stats}
    return {"params": state.gen.params, "batch_stats": state.gen.batch_stats}


def grid_noise(state: GANState, latent_dim: int) -> jax.Array:
    """The run's fixed sample noise [25, latent_dim], the same for the whole run and across resumes."""
    grid_key = _key_for(state.key, _GRID_STREAM)
    return jax.random.normal(grid_key, (GRID_SIZE, latent_dim))


def generate(gen: GenState, noise: jax.Array) -> jax.Array:
    """Eval-mode (running BatchNorm statistics) images [n, 784] in [-1, 1] from noise [n, latent]."""
    return gen.apply_fn({"params": gen.params, "batch_stats": gen.batch_stats}, noise, train=False)


def _bce(logits: jax.Array, target: float) -> jax.Array:
    """Mean binary cross-entropy of logits [B] against a constant label."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def gen_step(gen: GenState, disc: train_state.TrainState, noise: jax.Array
             ) -> tuple[GenState, jax.Array, dict]:
    """One generator update with the non-saturating loss -log D(G(z)); noise [B, latent].

    Returns the new state, the fakes [B, 784] of this forward pass (made by the generator
    before its update, so ``disc_step`` can reuse them as the template's ``.detach()`` does)
    and metrics. The forward pass runs in train mode, updating the running statistics once.
    """

    def loss_fn(params):
        """Non-saturating generator loss, with the fakes and new running stats as aux."""
        fake, updates = gen.apply_fn({"params": params, "batch_stats": gen.batch_stats}, noise,
                                     train=True, mutable=["batch_stats"])
        logits = disc.apply_fn({"params": disc.params}, fake)
        return _bce(logits, 1.0), (fake, updates["batch_stats"])

    (loss, (fake, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
    gen = gen.apply_gradients(grads=grads, batch_stats=batch_stats)
    metrics = {"g_loss": loss, "g_grad_norm": optax.tree.norm(grads),
               "g_param_norm": optax.tree.norm(gen.params)}
    return gen, fake, metrics


def disc_step(disc: train_state.TrainState, real: jax.Array, fake: jax.Array
              ) -> tuple[train_state.TrainState, dict]:
    """One discriminator update on real [B, 784] (label 1) and fake [B, 784] (label 0) images.

    The loss is the minimax value -[log D(x) + log(1 - D(G(z)))], batch means summed.
    """
    batch = real.shape[0]

    def loss_fn(params):
        """Minimax discriminator loss, with both logits as aux."""
        # One pass over real and fake together: the discriminator has no batch statistics.
        logits = disc.apply_fn({"params": params}, jnp.concatenate([real, fake]))
        real_logits, fake_logits = logits[:batch], logits[batch:]
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0), (real_logits, fake_logits)

    (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
    disc = disc.apply_gradients(grads=grads)
    metrics = {"d_loss": loss, "d_real": jax.nn.sigmoid(real_logits).mean(),
               "d_fake": jax.nn.sigmoid(fake_logits).mean(),
               "fake_called_real": (fake_logits > 0).mean(dtype=jnp.float32),
               "d_grad_norm": optax.tree.norm(grads), "d_param_norm": optax.tree.norm(disc.params)}
    return disc, metrics


def gan_step(state: GANState, real_batch: jax.Array, noise_key: jax.Array) -> tuple[GANState, dict]:
    """One training step on real images [B, 784] (or [B, 28, 28]) in [-1, 1]; metrics are scalars.

    The study's template order: the generator step first, then the discriminator step on
    the same real batch and on the fakes of that one generator forward pass (detached),
    so each step draws one noise batch and runs the generator forward once (twice with the
    EMA, whose statistics come from its own forward pass on the same noise).
    """
    real = real_batch.reshape(real_batch.shape[0], -1)
    noise = jax.random.normal(noise_key, (real.shape[0], latent_dim_of(state.gen.params)))
    gen, fake, gen_metrics = gen_step(state.gen, state.disc, noise)
    disc, disc_metrics = disc_step(state.disc, real, jax.lax.stop_gradient(fake))
    state = update_ema(state.replace(gen=gen, disc=disc, step=state.step + 1), noise)
    return state, {**gen_metrics, **disc_metrics}


def score_noise(state: GANState, num_samples: int) -> jax.Array:
    """The run's fixed scoring noise [num_samples, latent]: the same at every checkpoint and on resume."""
    score_key = _key_for(state.key, _SCORE_STREAM)
    return jax.random.normal(score_key, (num_samples, latent_dim_of(state.gen.params)))


def scored_weights(state: GANState) -> tuple[str, ...]:
    """Which generators a state has: the raw one, and its EMA unless the EMA is disabled."""
    return ("raw", "ema") if state.ema_decay else ("raw",)


@jax.jit
def score_generators(state: GANState, noise: jax.Array, classifier_variables: dict,
                     reference_features: jax.Array) -> dict[str, dict[str, jax.Array]]:
    """IS and FID of eval-mode images of noise [M, latent] against reference features [M, F].

    One program for both generators: ``{"raw": scores, "ema": scores}`` (``"ema"`` only when the
    EMA is kept), each with ``classifier_scores``'s inception_score, inception_std and fid.
    """
    names = scored_weights(state)
    images = jnp.stack([state.gen.apply_fn(generator_variables(state, weights), noise, train=False)
                        for weights in names])
    scores = classifier_scores_of_sets(classifier_variables, images, reference_features)
    return {weights: {k: v[i] for k, v in scores.items()} for i, weights in enumerate(names)}


def score_record(scores: dict, *, step: int, epoch: int, num_samples: int) -> dict:
    """One scores.jsonl line: step, epoch, sample count, and ``{name}_{weights}`` per score."""
    record = {"step": step, "epoch": epoch, "num_samples": num_samples}
    for weights in (w for w in WEIGHTS[::-1] if w in scores):  # raw first
        for name in ("inception_score", "inception_std", "fid"):
            record[f"{name}_{weights}"] = float(str(np.float32(scores[weights][name])))  # shortest exact
    return record


def grid_slots(steps_per_epoch: int, sample_every: int) -> int:
    """How many grids one epoch can hold: multiples of ``sample_every`` in any run of that many steps."""
    return math.ceil(steps_per_epoch / sample_every)


def train_epoch(state: GANState, images: jax.Array, noise: jax.Array, *, batch_size: int,
                sample_every: int, batch_sharding: jax.sharding.Sharding | None = None
                ) -> tuple[GANState, dict, jax.Array, jax.Array]:
    """One epoch in ``lax.scan``: images uint8 [N, 28, 28] on the device, noise [25, latent].

    Batches come from a permutation drawn from (run key, epoch); the last N % batch_size
    images of each permutation are dropped (a full batch every step, PyTorch's drop_last).
    Returns the new state, metrics {name: [steps]}, grids [slots, 25, 784] and their steps
    [slots] (-1 for an unused slot): a grid is drawn *before* the update of every step
    whose count of updates done is a multiple of ``sample_every``, so it shows the
    generator after exactly that many updates.

    ``batch_sharding`` (data parallel, see ``epoch_function``) splits each real batch over
    devices; the noise and everything downstream follow it, and the batch-norm means and
    gradient sums over the global batch become all-reduces that XLA inserts.
    """
    steps = images.shape[0] // batch_size
    epoch = state.step // steps
    shuffle_key = _key_for(state.key, _SHUFFLE_STREAM, epoch)
    order = jax.random.permutation(shuffle_key, images.shape[0])[: steps * batch_size]
    slots = grid_slots(steps, sample_every)
    grids = jnp.zeros((slots, noise.shape[0], IMAGE_SIZE), jnp.float32)
    grid_steps = jnp.full((slots,), -1, jnp.int32)

    def draw_grid(buffers, gen, step):
        """Writes the eval-mode grid of the fixed noise into the next free slot."""
        grids, grid_steps, slot = buffers
        return grids.at[slot].set(generate(gen, noise)), grid_steps.at[slot].set(step), slot + 1

    def body(carry, batch_indices):
        """One step: maybe a grid, then a gan_step on the gathered, scaled batch."""
        state, buffers = carry
        buffers = jax.lax.cond(state.step % sample_every == 0, draw_grid, lambda b, *_: b,
                               buffers, state.gen, state.step)
        real = images[batch_indices].astype(jnp.float32) / 127.5 - 1.0  # [0, 255] -> [-1, 1]
        if batch_sharding is not None:
            real = jax.lax.with_sharding_constraint(real, batch_sharding)
        noise_key = _key_for(state.key, _NOISE_STREAM, state.step)
        state, metrics = gan_step(state, real, noise_key)
        return (state, buffers), metrics

    init = (state, (grids, grid_steps, jnp.zeros((), jnp.int32)))
    (state, (grids, grid_steps, _)), metrics = jax.lax.scan(body, init, order.reshape(steps, batch_size))
    return state, metrics, grids, grid_steps


def epoch_function(batch_size: int, sample_every: int, mesh: Mesh | None = None) -> Callable:
    """``train_epoch`` jitted, state donated; cached, so runs in one process share compilations.

    With a ``mesh`` of several devices it is data parallel: every argument and result is
    replicated on the mesh (place them with ``parallel.put``) and each step's batch is split
    over it (``batch_size`` must be a multiple of the mesh size).
    """
    # One cache key for every way of saying "one device", so callers share one compilation.
    return _epoch_function(batch_size, sample_every, mesh if parallel.is_parallel(mesh) else None)


@functools.cache
def _epoch_function(batch_size: int, sample_every: int, mesh: Mesh | None) -> Callable:
    """``epoch_function`` behind its cache."""
    epoch = functools.partial(train_epoch, batch_size=batch_size, sample_every=sample_every)
    if mesh is None:
        return jax.jit(epoch, donate_argnums=0)
    whole = parallel.replicated(mesh)
    return jax.jit(functools.partial(epoch, batch_sharding=parallel.batch(mesh)), in_shardings=whole,
                   out_shardings=whole, donate_argnums=0)


def fingerprint(images: np.ndarray) -> str:
    """A short SHA-256 of the image bytes, so a resume on other data is caught."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def _validate_images(images: np.ndarray, batch_size: int) -> np.ndarray:
    """Checks the image set is uint8 [N, 28, 28] with at least one full batch."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise UserError("the GAN trains on uint8 images [N, 28, 28], not "
                        f"{images.dtype} {list(images.shape)}")
    if batch_size > images.shape[0]:
        raise UserError(f"the batch size {batch_size} is larger than the {images.shape[0]} images "
                        "of the data set")
    return images


def _write_json(path: str, obj: dict) -> None:
    """Writes JSON through a temporary file and a rename, so it is never half-written."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _sample_path(samples_dir: str, step: int) -> str:
    """Where the grid after ``step`` updates goes."""
    return os.path.join(samples_dir, f"step_{step:07d}.png")


def _records(metrics: dict, first_step: int, epoch: int) -> list[dict]:
    """One JSON record per step; float32 values written in their shortest exact form."""
    names = [m for m in METRICS if m in metrics]
    columns = [[float(str(v)) for v in np.asarray(metrics[m], np.float32)] for m in names]
    return [{"step": first_step + i, "epoch": epoch, **dict(zip(names, values, strict=True))}
            for i, values in enumerate(zip(*columns, strict=True))]


def _first_non_finite(metrics: dict) -> tuple[int, str, float] | None:
    """(index, name, value) of the first step with a non-finite metric, or None."""
    bad = None
    for name in METRICS:
        values = np.asarray(metrics[name])
        where = np.flatnonzero(~np.isfinite(values))
        if where.size and (bad is None or where[0] < bad[0]):
            bad = (int(where[0]), name, float(values[where[0]]))
    return bad


def _resume_or_init(manager, config: GANConfig, record: dict, checkpoint_dir: str, restart: bool
                    ) -> tuple[GANState, int | None]:
    """The newest restorable checkpoint's state (after checking it fits this run) or a fresh one."""
    abstract = jax.eval_shape(functools.partial(init_state, config))
    found = checkpoint.restore_latest_good(manager, abstract, kind=KIND, set_aside=True, restart=restart,
                                           must_match={k: record[k] for k in MATCH_KEYS})
    if found is None:
        return init_state(config), None
    state, saved, resumed_step = found
    if (saved.get("num_images"), saved.get("data_sha256")) != (record["num_images"], record["data_sha256"]):
        theirs = f"{saved.get('source') or 'unknown source'}, {saved.get('num_images')} images"
        ours = f"{record['source'] or 'given array'}, {record['num_images']} images"
        raise UserError(f"the checkpoint in {checkpoint_dir} was trained on other images ({theirs}) "
                        f"than this run's ({ours})")
    return state, resumed_step


def default_mesh() -> Mesh:
    """Every device of every process, except on a lone CPU process: there its first device only.

    Several CPU devices of one process share its cores and memory, so splitting a batch of 64
    over them buys no arithmetic and pays for the collectives (``experiments.benchmark``: about
    a third of the one-device steps/s on two); the sweep, whose runs never talk, is where
    those devices help.
    """
    if jax.default_backend() == "cpu" and jax.process_count() == 1:
        return parallel.make_mesh(jax.devices()[:1])
    return parallel.make_mesh()


def _write_epoch(metrics: dict, grids: np.ndarray, grid_steps: np.ndarray, *, first_step: int, epoch: int,
                 metrics_path: str, samples_dir: str, write: bool) -> tuple[int, str, float] | None:
    """Appends the epoch's step records and saves its grids (if ``write``), up to the first
    non-finite step.

    Returns that step's (index, metric, value), or None when the whole epoch was finite.
    """
    from jaxgan.plotting import gan as plots

    bad = _first_non_finite(metrics)
    good = len(metrics["d_loss"]) if bad is None else bad[0]
    if not write:
        return bad
    jsonl.append(metrics_path, _records({k: v[:good] for k, v in metrics.items()}, first_step, epoch))
    for grid, step in zip(grids, grid_steps, strict=True):
        if 0 <= step < first_step + good:  # step -1 marks an unused slot
            plots.save_grid(grid.reshape(-1, *IMAGE_SHAPE), _sample_path(samples_dir, int(step)))
    return bad


def train(images: np.ndarray, config: GANConfig, *, workdir: str, checkpoint_dir: str,
          source: str = "", progress: Callable[[dict], None] | None = None, restart: bool = False,
          reference: Reference | None = None, mesh: Mesh | None = None) -> dict:
    """Trains (or resumes) the GAN on uint8 images [N, 28, 28] up to ``config.epochs`` in total.

    Writes ``config.json``, ``metrics.jsonl`` (one line per step), ``samples/step_XXXXXXX.png``
    and, at the end, ``progress.png`` (grids at the start, middle and end) and ``losses.png``
    in ``workdir``; checkpoints go to ``checkpoint_dir``, and one that holds any is resumed
    from its newest that restores (damaged newer ones are set aside with a warning; when none
    restores, ``restart`` allows a fresh start). The directory is locked for the run. SIGINT or
    SIGTERM ends the run at the end of the current epoch with a checkpoint there and raises
    ``Interrupted``. ``progress`` gets a ``{"event": "start", ...}`` dict, then one
    ``{"event": "epoch", ...}`` dict per epoch.

    With a ``reference`` (``jaxgan.scores.held_out_reference``), every scheduled checkpoint (each
    ``checkpoint_every`` epochs and the last, not one a signal forces) also scores the raw and EMA
    generators on ``reference.num_samples`` images of fixed noise: one line per checkpoint in
    ``scores.jsonl`` (cut back on resume as metrics.jsonl is), a ``{"event": "scores", ...}``
    progress dict with the seconds it took, and ``scores.png`` at the end.

    ``mesh`` (default: ``default_mesh()``) makes training data parallel when it spans several
    devices: parameters replicated, each batch split over the devices (the batch size must be a
    multiple of their count); a one-device mesh is the plain path.

    In a multi-process run every process trains and checkpoints, and process 0 alone writes
    ``workdir`` (``parallel.is_writer``).

    Returns a summary: the final step and epoch, the last epoch's means, compile, training and
    scoring seconds, steps/s, and the final state.
    """
    from jaxgan.plotting import gan as plots  # matplotlib only once a run draws pictures

    images = _validate_images(images, config.batch_size)
    if not 0.0 <= config.ema_decay < 1.0:
        raise UserError(f"the EMA decay must lie in [0, 1), not {config.ema_decay}")
    num_images = images.shape[0]
    steps_per_epoch = num_images // config.batch_size
    mesh = default_mesh() if mesh is None else mesh
    if not parallel.is_parallel(mesh):
        mesh = None  # one device: the same program (and jit cache entry) as without a mesh
    elif config.batch_size % mesh.size:
        raise UserError(f"the batch size {config.batch_size} cannot be split evenly over {mesh.size} "
                        f"devices; choose a multiple of {mesh.size} or make fewer devices visible")
    record = {**config.record(), "source": source, "num_images": num_images,
              "data_sha256": fingerprint(images), "steps_per_epoch": steps_per_epoch,
              "dropped_per_epoch": num_images % config.batch_size}
    samples_dir = os.path.join(workdir, "samples")
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    scores_path = os.path.join(workdir, "scores.jsonl")
    try:
        os.makedirs(samples_dir, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {samples_dir}: {err.strerror}") from None
    report = progress or (lambda info: None)

    manager = checkpoint.open_manager(checkpoint_dir, max_to_keep=config.keep_checkpoints)
    with contextlib.ExitStack() as stack:
        stack.callback(manager.close)
        stack.enter_context(checkpoint.lock(checkpoint_dir))
        # Unwound before the lock is released: a save already started completes, even after a failure.
        stack.callback(manager.wait_until_finished)
        signals = stack.enter_context(_deferred_signals())
        state, resumed_step = _resume_or_init(manager, config, record, checkpoint_dir, restart)
        start_step = int(state.step)
        # Whatever the workdir holds beyond the starting point belongs to a run that is now
        # being redone: the log is cut there and later grids are drawn again.
        writer = parallel.is_writer()
        if writer:
            jsonl.truncate_after(metrics_path, "step", start_step)
            jsonl.truncate_after(scores_path, "step", start_step)
            for step, path in plots.grid_files(samples_dir):
                if step > start_step:
                    os.remove(path)
            _write_json(os.path.join(workdir, "config.json"), record)

        noise = grid_noise(state, config.latent_dim)
        if mesh is None:
            images_dev = jax.device_put(images)  # the whole set, once, as uint8
        else:  # data parallel: all three whole on every device; the epoch splits each batch
            state, images_dev, noise = parallel.put((state, images, noise), parallel.replicated(mesh))
        start_epoch = start_step // steps_per_epoch
        report({"event": "start", "epoch": start_epoch, "epochs": config.epochs, "step": start_step,
                "resumed": resumed_step is not None, "steps_per_epoch": steps_per_epoch})
        tick = time.perf_counter()
        if start_epoch < config.epochs:  # compiled once here; every epoch reuses it
            compiled = epoch_function(config.batch_size, config.sample_every, mesh).lower(
                state, images_dev, noise).compile()
            if reference is not None:  # the scoring program too, so its first use is not slow
                noise_for_scores = score_noise(state, reference.num_samples)
                score_args = (noise_for_scores, reference.variables, reference.features)
                if mesh is not None:  # beside the replicated state, so one program sees one device set
                    score_args = parallel.put(score_args, parallel.replicated(mesh))
                scorer = score_generators.lower(state, *score_args).compile()
        compile_s = time.perf_counter() - tick

        train_s, score_s, last = 0.0, 0.0, {}
        for epoch in range(start_epoch, config.epochs):
            tick = time.perf_counter()
            state, metrics, grids, grid_steps = compiled(state, images_dev, noise)
            metrics, grids, grid_steps = jax.device_get((metrics, grids, grid_steps))  # the one sync
            seconds = time.perf_counter() - tick
            train_s += seconds
            first_step = epoch * steps_per_epoch + 1
            bad = _write_epoch(metrics, grids, grid_steps, first_step=first_step, epoch=epoch + 1,
                               metrics_path=metrics_path, samples_dir=samples_dir, write=writer)
            if bad is not None:  # the state is not saved; the newest checkpoint stays the last good one
                index, name, value = bad
                newest = checkpoint.latest_step(manager)
                kept = f"the checkpoint at step {newest}" if newest is not None else "no checkpoint"
                raise NonFiniteLoss(f"{name} became {value} at step {first_step + index} "
                                    f"(epoch {epoch + 1}), so training stopped without saving; "
                                    f"{kept} holds the last good state")
            step = int(state.step)
            stopping = bool(signals) and epoch + 1 < config.epochs
            scheduled = (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
            if scheduled or stopping:
                checkpoint.save(manager, step, state, record)
            # Scored at scheduled checkpoints only, so an interrupted run's log equals an unbroken one's.
            if scheduled and reference is not None:
                tick = time.perf_counter()
                scores = jax.device_get(scorer(state, *score_args))
                line = score_record(scores, step=step, epoch=epoch + 1, num_samples=reference.num_samples)
                if writer:
                    jsonl.append(scores_path, [line])
                seconds_scoring = time.perf_counter() - tick
                score_s += seconds_scoring
                report({"event": "scores", "epoch": epoch + 1, "step": step, "seconds": seconds_scoring,
                        **line})
            if stopping:
                manager.wait_until_finished()
                signame = signal.Signals(signals[0]).name
                raise Interrupted(f"{signame} received: saved a checkpoint at step {step} (the end of epoch "
                                  f"{epoch + 1}) in {checkpoint_dir}; the same command resumes from there",
                                  signals[0])
            last = {k: float(np.mean(metrics[k])) for k in METRICS}
            report({"event": "epoch", "epoch": epoch + 1, "epochs": config.epochs, "step": step,
                    "steps_per_s": steps_per_epoch / seconds, **last})

        final_step = int(state.step)
        final_grid = np.asarray(decode(generator_variables(state), noise))  # on every process: a collective
        if writer:
            plots.save_grid(final_grid, _sample_path(samples_dir, final_step))
            plots.progress_figure(samples_dir, os.path.join(workdir, "progress.png"))
            if os.path.exists(metrics_path):
                plots.loss_figure(metrics_path, os.path.join(workdir, "losses.png"))
            if os.path.exists(scores_path):
                plots.scores_figure(scores_path, os.path.join(workdir, "scores.png"))
    trained = final_step - start_step
    return {"step": final_step, "epoch": final_step // steps_per_epoch, "resumed_from": resumed_step,
            "compile_s": compile_s, "train_s": train_s, "score_s": score_s,
            "steps_per_s": trained / train_s if train_s else float("nan"), "last_epoch": last,
            "state": state}


def restore_generator(checkpoint_dir: str, step: int | None = None, weights: str | None = None
                      ) -> tuple[dict, dict]:
    """A generator's variables ``{"params", "batch_stats"}`` and its run's config plus ``checkpoint_step``
    and ``weights``.

    ``weights`` is "ema" (the EMA of the generator's weights, with its own BatchNorm statistics),
    "raw" (the generator as trained), or None: the EMA when the checkpoint keeps one, else raw.
    Reads the newest (or the given) checkpoint into an abstract target from ``jax.eval_shape``,
    built from the config saved beside it. A checkpoint written before the EMA existed gives
    its raw generator; asking it (or one trained with ``ema_decay`` 0) for "ema" is a UserError.
    """
    if weights is not None and weights not in WEIGHTS:
        raise UserError(f"unknown generator weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    manager = checkpoint.open_manager(checkpoint_dir, create=False)
    try:
        step, record = checkpoint.read_config(manager, step)
        if record.get("kind") != KIND:
            raise UserError(f"{checkpoint_dir} holds a {record.get('kind', 'unknown')!r} checkpoint, "
                            "not a GAN one")
        predates_ema = "ema_decay" not in record
        has_ema = not predates_ema and record["ema_decay"] > 0
        weights = weights or ("ema" if has_ema else "raw")
        if weights == "ema" and not has_ema:
            why = "it predates the EMA" if predates_ema else "it was trained with ema_decay 0"
            raise UserError(f"the checkpoint at step {step} in {checkpoint_dir} holds no EMA of the "
                            f"generator's weights ({why}); use the raw weights")
        config = GANConfig.from_record(record)
        abstract = jax.eval_shape(functools.partial(init_state, config))
        if predates_ema:  # the same tree without the EMA fields (Orbax matches a dict by field names)
            abstract = {name: getattr(abstract, name) for name in ("gen", "disc", "step", "key")}
        state, record = checkpoint.restore(manager, abstract, kind=KIND, step=step)
    finally:
        manager.close()
    if predates_ema:
        gen_variables = {"params": state["gen"].params, "batch_stats": state["gen"].batch_stats}
    else:
        gen_variables = generator_variables(state, weights)
    return gen_variables, {**record, "checkpoint_step": step, "weights": weights}


@functools.partial(jax.jit, static_argnums=0)
def _generate(generator: Generator, variables: dict, noise: jax.Array) -> jax.Array:
    """Eval-mode generator forward pass: noise [n, latent] -> [n, 784]."""
    return generator.apply(variables, noise, train=False)


def decode(gen_variables: dict, noise: jax.Array) -> jax.Array:
    """Eval-mode images float32 [n, 28, 28] in [-1, 1] from latents [n, latent] (e.g. an interpolation)."""
    params = gen_variables["params"]
    depth = len([name for name in params if name.startswith("dense")])
    # The layer sizes are read off the weights, so any saved generator decodes without its config.
    features = tuple(params[f"dense{i}"]["kernel"].shape[1] for i in range(1, depth))
    images = _generate(Generator(features=features), gen_variables, jnp.asarray(noise, jnp.float32))
    return images.reshape(-1, *IMAGE_SHAPE)


def latent_dim_of(gen_params: dict) -> int:
    """The latent size a generator's parameters expect."""
    return int(gen_params["dense1"]["kernel"].shape[0])


def sample(gen_variables: dict, key: jax.Array, n: int) -> jax.Array:
    """``n`` eval-mode samples float32 [n, 28, 28] in [-1, 1] from standard normal noise of ``key``."""
    noise = jax.random.normal(key, (n, latent_dim_of(gen_variables["params"])))
    return decode(gen_variables, noise)

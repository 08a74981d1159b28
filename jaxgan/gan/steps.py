"""Part 2, the pure parts: the GAN state, ``gen_step``/``disc_step``/``gan_step``, the EMA, a scanned epoch.

``train_epoch`` is one jitted program (``epoch_function``): a ``lax.scan`` that shuffles,
gathers and scales batches, takes one ``gan_step`` per batch and, whenever the step count is a
multiple of ``sample_every``, draws the 5x5 grid of the fixed noise. ``score_generators`` scores
the raw and EMA generators in one program. The host loop around them is ``jaxgan.gan.train``.

EMA: every step also updates an exponential moving average of the generator's weights
(``GANState.ema_params``, with a warm-up, see ``ema_decay_at``). Those averaged weights were never
trained as they stand, so their BatchNorm statistics (``ema_batch_stats``) are measured rather than
tracked: at the end of every epoch, the batch statistics of ``EMA_STATS_BATCHES`` train-mode passes
of the EMA weights are averaged (``measure_ema_stats``, stochastic weight averaging's ``bn_update``),
so a checkpoint, a score or a sample always sees statistics of the weights it holds. The EMA never
feeds back into training: the raw weights follow the same path with or without it.

Randomness: one run key (``GANState.key``, raw uint32 [2]) never changes during the run;
every draw folds a stream id and an index into it (shuffle: epoch; noise: step; grid and
score noise: none), so a run resumed from a checkpoint draws exactly the numbers an unbroken one draws.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state
from jax.sharding import Mesh

from jaxgan.configs.gan import GANConfig
from jaxgan.models.gan import IMAGE_SIZE, Discriminator, Generator, latent_dim_of, recompute_batch_stats
from jaxgan.runtime import parallel
from jaxgan.scores import classifier_scores_of_sets

# ema_norm is the norm of the EMA generator's weights: the EMA never feeds back into training, so
# the losses cannot show when it stops being finite; this does.
METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "fake_called_real",
           "d_grad_norm", "g_grad_norm", "d_param_norm", "g_param_norm", "ema_norm")
GRID_SIZE = 25  # a 5x5 grid of samples
WEIGHTS = ("ema", "raw")  # the two generators a state holds
_SHUFFLE_STREAM, _NOISE_STREAM, _GRID_STREAM, _SCORE_STREAM, _EMA_STATS_STREAM = 1, 2, 3, 4, 5
# Batches (of the training batch size) the EMA's BatchNorm statistics are measured on at each epoch's
# end. On 2,500-step runs (python -m benchmarks.ema_batch_stats, docs/gan_vs_pytorch.md) 8, 16 and 32
# batches of 64 score within 2 FID of each other and of statistics tracked with a forward pass every step.
EMA_STATS_BATCHES = 16


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


EMA_WARMUP = 9.0  # the decay of update n is min(decay, n / (n + 9)): 0.1, 0.18, ..., 0.5 at n = 9


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
    """The EMA's decay in update number ``step`` (1, 2, ...): min(decay, step / (step + 9)).

    A warm-up, as TensorFlow's ``ExponentialMovingAverage(decay, num_updates)`` does: the average
    spans about the last tenth of the steps so far (1/(1 - d) ~ (step + 9) / 9) until that reaches
    the decay's own horizon 1/(1 - decay) (1,000 steps at 0.999, from step ~9,000 on). A fixed
    decay of 0.999 would instead average the whole of any run shorter than a few thousand steps,
    its untrained beginning included.
    """
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, t / (t + EMA_WARMUP))


def update_ema(state: GANState) -> GANState:
    """Moves the EMA of the generator's weights towards them after update ``state.step``.

    ``ema = d ema + (1 - d) params`` with the warmed-up decay ``ema_decay_at`` (optax's
    ``tree.update_moment``). The EMA's BatchNorm statistics are left as they are (``measure_ema_stats``
    measures them at the end of the epoch), except with ``ema_decay`` 0, where the EMA is the raw
    generator, statistics included, and costs nothing.
    """
    if state.ema_decay == 0.0:
        return state.replace(ema_params=state.gen.params, ema_batch_stats=state.gen.batch_stats)
    decay = ema_decay_at(state.step, state.ema_decay)
    ema_params = optax.tree.update_moment(state.gen.params, state.ema_params, decay, order=1)
    return state.replace(ema_params=ema_params)


def measure_ema_stats(state: GANState, batch_size: int,
                      batch_sharding: jax.sharding.NamedSharding | None = None) -> GANState:
    """The state with the EMA's BatchNorm statistics measured for its current weights.

    ``recompute_batch_stats`` on noise [EMA_STATS_BATCHES, batch_size, latent] drawn from (run key,
    step), so a resumed run measures what an unbroken one does. Unchanged with ``ema_decay`` 0.
    With ``batch_sharding`` (data parallel) each batch is split over the devices as in training.
    """
    if state.ema_decay == 0.0:
        return state
    key = _key_for(state.key, _EMA_STATS_STREAM, state.step)
    noise = jax.random.normal(key, (EMA_STATS_BATCHES, batch_size, latent_dim_of(state.ema_params)))
    if batch_sharding is not None:  # [K, B, latent]: split B, the batch axis, as the training batches
        noise = jax.lax.with_sharding_constraint(noise, jax.sharding.NamedSharding(
            batch_sharding.mesh, jax.sharding.PartitionSpec(None, *batch_sharding.spec)))
    return state.replace(ema_batch_stats=recompute_batch_stats(state.ema_params, noise))


def generator_variables(state: GANState, weights: str = "raw") -> dict:
    """``{"params", "batch_stats"}`` of the raw generator or (``weights="ema"``) of its EMA."""
    if weights == "ema":
        return {"params": state.ema_params, "batch_stats": state.ema_batch_stats}
    return {"params": state.gen.params, "batch_stats": state.gen.batch_stats}


def grid_noise(state: GANState, latent_dim: int) -> jax.Array:
    """The run's fixed sample noise [25, latent_dim], the same for the whole run and across resumes."""
    grid_key = _key_for(state.key, _GRID_STREAM)
    return jax.random.normal(grid_key, (GRID_SIZE, latent_dim))


def generate(gen: GenState, noise: jax.Array, mode: str = "eval") -> jax.Array:
    """Images [n, 784] in [-1, 1] from noise [n, latent] with the generator's BatchNorm in ``mode``:
    "eval" uses the running averages (each image depends on its own noise alone), "train" the batch
    statistics of these n images, as the study drew its grids (the running averages stay as they are).
    """
    variables = {"params": gen.params, "batch_stats": gen.batch_stats}
    if mode == "train":
        return gen.apply_fn(variables, noise, train=True, mutable=["batch_stats"])[0]
    return gen.apply_fn(variables, noise, train=False)


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


def disc_step(disc: train_state.TrainState, real: jax.Array, fake: jax.Array, d_loss: str = "mean"
              ) -> tuple[train_state.TrainState, dict]:
    """One discriminator update on real [B, 784] (label 1) and fake [B, 784] (label 0) images.

    The loss is the minimax value -[log D(x) + log(1 - D(G(z)))] of batch means, halved
    (``d_loss="mean"``: the mean of the two terms, as the study's code) or not (``"sum"``). Under
    Adam the scale changes an update only through its eps.
    """
    scale = 0.5 if d_loss == "mean" else 1.0
    batch = real.shape[0]

    def loss_fn(params):
        """Minimax discriminator loss, with both logits as aux."""
        # One pass over real and fake together: the discriminator has no batch statistics.
        logits = disc.apply_fn({"params": params}, jnp.concatenate([real, fake]))
        real_logits, fake_logits = logits[:batch], logits[batch:]
        return scale * (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0)), (real_logits, fake_logits)

    (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
    disc = disc.apply_gradients(grads=grads)
    metrics = {"d_loss": loss, "d_real": jax.nn.sigmoid(real_logits).mean(),
               "d_fake": jax.nn.sigmoid(fake_logits).mean(),
               "fake_called_real": (fake_logits > 0).mean(dtype=jnp.float32),
               "d_grad_norm": optax.tree.norm(grads), "d_param_norm": optax.tree.norm(disc.params)}
    return disc, metrics


def gan_step(state: GANState, real_batch: jax.Array, noise_key: jax.Array, d_loss: str = "mean"
             ) -> tuple[GANState, dict]:
    """One training step on real images [B, 784] (or [B, 28, 28]) in [-1, 1]; metrics are scalars.
    ``d_loss`` is the discriminator loss's reduction (see ``disc_step``).

    The study's template order: the generator step first, then the discriminator step on
    the same real batch and on the fakes of that one generator forward pass (detached),
    so each step draws one noise batch and runs the generator forward once.
    """
    real = real_batch.reshape(real_batch.shape[0], -1)
    noise = jax.random.normal(noise_key, (real.shape[0], latent_dim_of(state.gen.params)))
    gen, fake, gen_metrics = gen_step(state.gen, state.disc, noise)
    disc, disc_metrics = disc_step(state.disc, real, jax.lax.stop_gradient(fake), d_loss)
    state = update_ema(state.replace(gen=gen, disc=disc, step=state.step + 1))
    return state, {**gen_metrics, **disc_metrics, "ema_norm": optax.tree.norm(state.ema_params)}


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


def grid_slots(steps_per_epoch: int, sample_every: int) -> int:
    """How many grids one epoch can hold: multiples of ``sample_every`` in any run of that many steps."""
    return math.ceil(steps_per_epoch / sample_every)


def train_epoch(state: GANState, images: jax.Array, noise: jax.Array, *, batch_size: int,
                sample_every: int, d_loss: str = "mean", grid_mode: str = "train",
                batch_sharding: jax.sharding.NamedSharding | None = None
                ) -> tuple[GANState, dict, jax.Array, jax.Array]:
    """One epoch in ``lax.scan``: images uint8 [N, 28, 28] on the device, noise [25, latent].

    Batches come from a permutation drawn from (run key, epoch); the last N % batch_size
    images of each permutation are dropped (a full batch every step, PyTorch's drop_last).
    At the end the EMA's BatchNorm statistics are measured (``measure_ema_stats``).
    Returns the new state, metrics {name: [steps]}, grids [slots, 25, 784] and their steps
    [slots] (-1 for an unused slot): a grid is drawn *before* the update of every step
    whose count of updates done is a multiple of ``sample_every``, so it shows the
    generator after exactly that many updates, in ``grid_mode`` (see ``generate``); ``d_loss`` is
    the discriminator loss's reduction.

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
        """Writes the grid of the fixed noise into the next free slot."""
        grids, grid_steps, slot = buffers
        return grids.at[slot].set(generate(gen, noise, grid_mode)), grid_steps.at[slot].set(step), slot + 1

    def body(carry, batch_indices):
        """One step: maybe a grid, then a gan_step on the gathered, scaled batch."""
        state, buffers = carry
        buffers = jax.lax.cond(state.step % sample_every == 0, draw_grid, lambda b, *_: b,
                               buffers, state.gen, state.step)
        real = images[batch_indices].astype(jnp.float32) / 127.5 - 1.0  # [0, 255] -> [-1, 1]
        if batch_sharding is not None:
            real = jax.lax.with_sharding_constraint(real, batch_sharding)
        noise_key = _key_for(state.key, _NOISE_STREAM, state.step)
        state, metrics = gan_step(state, real, noise_key, d_loss)
        return (state, buffers), metrics

    init = (state, (grids, grid_steps, jnp.zeros((), jnp.int32)))
    (state, (grids, grid_steps, _)), metrics = jax.lax.scan(body, init, order.reshape(steps, batch_size))
    return measure_ema_stats(state, batch_size, batch_sharding), metrics, grids, grid_steps


def epoch_function(batch_size: int, sample_every: int, mesh: Mesh | None = None, d_loss: str = "mean",
                   grid_mode: str = "train") -> Callable:
    """``train_epoch`` jitted, state donated; cached, so runs in one process share compilations.

    With a ``mesh`` of several devices it is data parallel: every argument and result is
    replicated on the mesh (place them with ``parallel.put``) and each step's batch is split
    over it (``batch_size`` must be a multiple of the mesh size).
    """
    # One cache key for every way of saying "one device", so callers share one compilation.
    return _epoch_function(batch_size, sample_every, mesh if parallel.is_parallel(mesh) else None, d_loss,
                           grid_mode)


@functools.cache
def _epoch_function(batch_size: int, sample_every: int, mesh: Mesh | None, d_loss: str,
                    grid_mode: str) -> Callable:
    """``epoch_function`` behind its cache."""
    epoch = functools.partial(train_epoch, batch_size=batch_size, sample_every=sample_every, d_loss=d_loss,
                              grid_mode=grid_mode)
    if mesh is None:
        return jax.jit(epoch, donate_argnums=0)
    whole = parallel.replicated(mesh)
    return jax.jit(functools.partial(epoch, batch_sharding=parallel.batch(mesh)), in_shardings=whole,
                   out_shardings=whole, donate_argnums=0)

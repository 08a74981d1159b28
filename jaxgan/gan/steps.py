"""Part 2, the pure parts: the GAN state, ``gen_step``/``disc_step``/``gan_step``, the EMA, a scanned epoch.

``train_epoch`` is one jitted program (``epoch_function``): a ``lax.scan`` that shuffles,
gathers and scales batches, takes one ``gan_step`` per batch and, whenever the step count is a
multiple of ``sample_every``, draws the 5x5 grid of the fixed noise. ``score_generators`` scores
the raw and EMA generators in one program. The host loop around them is ``jaxgan.gan.train``;
``jaxgan.gan.sweep`` runs many states in one program.

One convention for settings. A ``GANState`` holds arrays only: both networks (``GenState``,
``DiscState``), the EMA, the step count, the run key and the run's ``Hyperparameters`` (learning
rate, Adam's betas, the EMA's decay, the discriminator loss's scale) as float32 scalars. Those are
traced, so one compiled program serves every value, and a sweep stacks states whose
hyperparameters differ. Everything that shapes the program instead (batch size, grid cadence and
mode) reaches the jitted epoch as one static, hashable ``EpochConfig``; layer widths are the
shapes of the parameters. A checkpoint holds the state without its hyperparameters
(``checkpoint_tree``: the tree every earlier version wrote), since the run's config.json records
them; ``from_checkpoint`` puts them back.

EMA: every step also updates an exponential moving average of the generator's weights
(``GANState.ema_params``, with a warm-up, see ``ema_decay_at``). Those averaged weights were never
trained as they stand, so their BatchNorm statistics (``ema_batch_stats``) are measured rather than
tracked: at the end of every epoch, the batch statistics of ``EMA_STATS_BATCHES`` train-mode passes
of the EMA weights are averaged (``measure_ema_stats``, stochastic weight averaging's ``bn_update``),
so a checkpoint, a score or a sample always sees statistics of the weights it holds. The EMA never
feeds back into training: the raw weights follow the same path with or without it. A decay of 0
keeps no average: the EMA is then the raw generator, statistics included.

Randomness: one run key (``GANState.key``, raw uint32 [2]) never changes during the run;
every draw folds a stream id and an index into it (shuffle: epoch; noise: step; grid and
score noise: none), so a run resumed from a checkpoint draws exactly the numbers an unbroken one draws.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh

from jaxgan.configs.gan import GANConfig
from jaxgan.models.gan import (
    IMAGE_SIZE,
    Discriminator,
    Generator,
    discriminator_for,
    generator_for,
    latent_dim_of,
    recompute_batch_stats,
)
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
# end. On 2,500-step runs (docs/gan_vs_pytorch.md) 8, 16 and 32 batches of 64 score within 2 FID of
# each other and of statistics tracked with a forward pass every step.
EMA_STATS_BATCHES = 16
ADAM_EPS = 1e-8  # PyTorch's, added outside the square root
# The fields of a GANState that a checkpoint holds (all but the hyperparameters), as every version wrote them.
CHECKPOINTED = ("gen", "disc", "step", "key", "ema_params", "ema_batch_stats")
D_LOSS_SCALES = {"mean": 0.5, "sum": 1.0}  # the discriminator loss's factor on its two BCE terms


class Hyperparameters(struct.PyTreeNode):
    """A run's traced settings, each float32 [] (stacked [R] in a sweep); make them with ``hyperparameters``.

    ``one_minus_b1`` and ``one_minus_b2`` are 1 - b computed in float64 and then rounded, as
    PyTorch's Adam and optax with Python-float betas compute them (1 - float32(0.999) differs
    from float32(0.001) in the fifth digit).
    """

    learning_rate: jax.Array
    b1: jax.Array
    b2: jax.Array
    one_minus_b1: jax.Array
    one_minus_b2: jax.Array
    ema_decay: jax.Array
    d_loss_scale: jax.Array


def hyperparameters(config: GANConfig) -> Hyperparameters:
    """The traced settings of ``config`` (its learning rate, betas, EMA decay and discriminator loss)."""
    f32 = lambda x: jnp.asarray(np.float32(x))
    return Hyperparameters(learning_rate=f32(config.learning_rate), b1=f32(config.b1), b2=f32(config.b2),
                           one_minus_b1=f32(1.0 - config.b1), one_minus_b2=f32(1.0 - config.b2),
                           ema_decay=f32(config.ema_decay), d_loss_scale=f32(D_LOSS_SCALES[config.d_loss]))


@dataclasses.dataclass(frozen=True)
class EpochConfig:
    """The static settings of a training epoch: everything that changes its compiled program's shapes
    or branches. Hashable, so it is the jitted epoch's one static argument."""

    batch_size: int
    sample_every: int
    grid_mode: str = "train"

    @classmethod
    def of(cls, config: GANConfig) -> EpochConfig:
        """The epoch settings of a run's config."""
        return cls(batch_size=config.batch_size, sample_every=config.sample_every, grid_mode=config.grid_mode)


class GenState(struct.PyTreeNode):
    """The generator: update count int32 [], params, Adam state (optax.adam's tree), BatchNorm running stats.

    The leaves and their names are those of the Flax ``TrainState`` (plus ``batch_stats``) that
    earlier versions checkpointed; the module is rebuilt from the parameters' shapes.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    batch_stats: Any

    def apply_gradients(self, grads: Any, hparams: Hyperparameters, **changes) -> GenState:
        """The state after one Adam update with ``grads``; ``changes`` replace other fields."""
        params, opt_state = adam_update(self.params, grads, self.opt_state, hparams)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


class DiscState(struct.PyTreeNode):
    """The discriminator: update count int32 [], params, Adam state (the leaves of a Flax TrainState)."""

    step: jax.Array
    params: Any
    opt_state: Any

    apply_gradients = GenState.apply_gradients


class GANState(struct.PyTreeNode):
    """Everything a run needs to continue: both networks, the generator's EMA, the step count, the run key,
    the run's hyperparameters.

    ``step`` is int32 [] (updates done); ``key`` is the run's raw uint32 [2] PRNG key;
    ``ema_params`` and ``ema_batch_stats`` have the shapes of the generator's params and batch
    stats. No field is static, so every state of one architecture shares one compiled program.
    """

    gen: GenState
    disc: DiscState
    step: jax.Array
    key: jax.Array
    ema_params: Any
    ema_batch_stats: Any
    hparams: Hyperparameters


def checkpoint_tree(state: GANState) -> dict:
    """What a checkpoint holds of ``state``: ``{field: value}`` for the ``CHECKPOINTED`` fields (the
    hyperparameters are in the run's record). Also the abstract target to restore into."""
    return {name: getattr(state, name) for name in CHECKPOINTED}


def from_checkpoint(tree: Mapping[str, Any], config: GANConfig) -> GANState:
    """The GANState of a restored ``checkpoint_tree`` with ``config``'s hyperparameters."""
    return GANState(**{name: tree[name] for name in CHECKPOINTED}, hparams=place_like(hyperparameters(config),
                                                                                      tree["step"]))


def place_like(tree: Any, like: jax.Array) -> Any:
    """``tree`` on the devices (with the sharding) of the array ``like``."""
    return jax.device_put(tree, like.sharding) if isinstance(like, jax.Array) else tree


# Adam as PyTorch computes it, with traced hyperparameters. optax.adam computes exactly this for Python-float
# settings; built from arrays, it would round 1 - b in float32 (see ``Hyperparameters``). The state is
# optax.adam's (ScaleByAdamState, EmptyState), so checkpoints of either read the same.
_adam_init = optax.adam(1.0).init


def adam_update(params: Any, grads: Any, opt_state: tuple, h: Hyperparameters) -> tuple[Any, tuple]:
    """One Adam step: (new params, new state). p -= lr m_hat / (sqrt(v_hat) + eps), eps 1e-8."""
    adam, scale = opt_state
    mu = jax.tree.map(lambda g, t: h.one_minus_b1 * g + h.b1 * t, grads, adam.mu)
    nu = jax.tree.map(lambda g, t: h.one_minus_b2 * (g ** 2) + h.b2 * t, grads, adam.nu)
    count = optax.safe_increment(adam.count)
    mu_hat = optax.tree.bias_correction(mu, h.b1, count)
    nu_hat = optax.tree.bias_correction(nu, h.b2, count)
    step_size = -h.learning_rate
    updates = jax.tree.map(lambda m, v: step_size * (m / (jnp.sqrt(v + 0.0) + ADAM_EPS)), mu_hat, nu_hat)
    return optax.apply_updates(params, updates), (optax.ScaleByAdamState(count=count, mu=mu, nu=nu), scale)


def _key_for(run_key: jax.Array, stream: int, index: jax.Array | int = 0) -> jax.Array:
    """The key of draw ``index`` in ``stream``: a pure function of the run key, so resumes redraw it."""
    return jax.random.fold_in(jax.random.fold_in(run_key, stream), index)


def init_state(config: GANConfig) -> GANState:
    """A fresh GANState from ``config.seed`` (PyTorch-style initialisation, running stats 0 and 1)."""
    state = init_networks(jax.random.PRNGKey(config.seed), config.latent_dim, config.gen_features,
                          config.disc_features)
    state = state.replace(hparams=hyperparameters(config))
    # Committed to the default device, as a state restored by Orbax is: jit caches tell
    # committed from uncommitted arrays, and a fresh run and its resume should share one.
    # (This process's own first device: with several processes, jax.devices()[0] is process 0's.)
    return jax.device_put(state, jax.local_devices()[0])


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def init_networks(seed_key: jax.Array, latent_dim: int, gen_features: tuple[int, ...],
                  disc_features: tuple[int, ...]) -> GANState:
    """Both networks, their Adam states and the EMA from one seed key [2]; ``hparams`` is None (jitted:
    op by op it takes many seconds; the architecture is static). A sweep vmaps it over keys."""
    generator, discriminator = Generator(features=gen_features), Discriminator(features=disc_features)
    gen_init_key, disc_init_key, run_key = jax.random.split(seed_key, 3)
    gen_vars = generator.init(gen_init_key, jnp.zeros((1, latent_dim)), train=False)
    disc_vars = discriminator.init(disc_init_key, jnp.zeros((1, IMAGE_SIZE)))
    zero = jnp.zeros((), jnp.int32)
    gen = GenState(step=zero, params=gen_vars["params"], opt_state=_adam_init(gen_vars["params"]),
                   batch_stats=gen_vars["batch_stats"])
    disc = DiscState(step=zero, params=disc_vars["params"], opt_state=_adam_init(disc_vars["params"]))
    # The EMA starts as a copy of the initial generator (bias correction gives it no weight
    # after the first update).
    return GANState(gen=gen, disc=disc, step=zero, key=run_key, ema_params=gen.params,
                    ema_batch_stats=gen.batch_stats, hparams=None)


EMA_WARMUP = 9.0  # the decay of update n is min(decay, n / (n + 9)): 0.1, 0.18, ..., 0.5 at n = 9


def ema_decay_at(step: jax.Array, decay: jax.Array | float) -> jax.Array:
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
    generator, statistics included.
    """
    decay = state.hparams.ema_decay
    kept = decay > 0  # traced, so a sweep may mix runs with and without an EMA
    # With decay 0 the moment is 1 * params + 0 * ema: the raw weights exactly (the EMA is finite).
    ema_params = optax.tree.update_moment(state.gen.params, state.ema_params, ema_decay_at(state.step, decay),
                                          order=1)
    ema_batch_stats = jax.tree.map(lambda e, r: jnp.where(kept, e, r), state.ema_batch_stats,
                                   state.gen.batch_stats)
    return state.replace(ema_params=ema_params, ema_batch_stats=ema_batch_stats)


def measure_ema_stats(state: GANState, batch_size: int,
                      batch_sharding: jax.sharding.NamedSharding | None = None) -> GANState:
    """The state with the EMA's BatchNorm statistics measured for its current weights.

    ``recompute_batch_stats`` on noise [EMA_STATS_BATCHES, batch_size, latent] drawn from (run key,
    step), so a resumed run measures what an unbroken one does. Unchanged with ``ema_decay`` 0.
    With ``batch_sharding`` (data parallel) each batch is split over the devices as in training.
    """

    def measure(state):
        """The statistics of the EMA's weights on this step's noise."""
        key = _key_for(state.key, _EMA_STATS_STREAM, state.step)
        noise = jax.random.normal(key, (EMA_STATS_BATCHES, batch_size, latent_dim_of(state.ema_params)))
        if batch_sharding is not None:  # [K, B, latent]: split B, the batch axis, as the training batches
            noise = jax.lax.with_sharding_constraint(noise, jax.sharding.NamedSharding(
                batch_sharding.mesh, jax.sharding.PartitionSpec(None, *batch_sharding.spec)))
        return recompute_batch_stats(state.ema_params, noise)

    stats = jax.lax.cond(state.hparams.ema_decay > 0, measure, lambda state: state.ema_batch_stats, state)
    return state.replace(ema_batch_stats=stats)


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
    generator = generator_for(gen.params)
    if mode == "train":
        return generator.apply(variables, noise, train=True, mutable=["batch_stats"])[0]
    return generator.apply(variables, noise, train=False)


def _bce(logits: jax.Array, target: float) -> jax.Array:
    """Mean binary cross-entropy of logits [B] against a constant label."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def gen_step(gen: GenState, disc: DiscState, noise: jax.Array, hparams: Hyperparameters
             ) -> tuple[GenState, jax.Array, dict]:
    """One generator update with the non-saturating loss -log D(G(z)); noise [B, latent].

    Returns the new state, the fakes [B, 784] of this forward pass (made by the generator
    before its update, so ``disc_step`` can reuse them as the template's ``.detach()`` does)
    and metrics. The forward pass runs in train mode, updating the running statistics once.
    """
    generator, discriminator = generator_for(gen.params), discriminator_for(disc.params)

    def loss_fn(params):
        """Non-saturating generator loss, with the fakes and new running stats as aux."""
        fake, updates = generator.apply({"params": params, "batch_stats": gen.batch_stats}, noise,
                                        train=True, mutable=["batch_stats"])
        logits = discriminator.apply({"params": disc.params}, fake)
        return _bce(logits, 1.0), (fake, updates["batch_stats"])

    (loss, (fake, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
    gen = gen.apply_gradients(grads, hparams, batch_stats=batch_stats)
    metrics = {"g_loss": loss, "g_grad_norm": optax.tree.norm(grads),
               "g_param_norm": optax.tree.norm(gen.params)}
    return gen, fake, metrics


def disc_step(disc: DiscState, real: jax.Array, fake: jax.Array, hparams: Hyperparameters
              ) -> tuple[DiscState, dict]:
    """One discriminator update on real [B, 784] (label 1) and fake [B, 784] (label 0) images.

    The loss is the minimax value -[log D(x) + log(1 - D(G(z)))] of batch means times
    ``hparams.d_loss_scale``: 0.5, the mean of the two terms as the study's code (``d_loss="mean"``),
    or 1 (``"sum"``). Under Adam the scale changes an update only through its eps.
    """
    batch = real.shape[0]
    discriminator = discriminator_for(disc.params)

    def loss_fn(params):
        """Minimax discriminator loss, with both logits as aux."""
        # One pass over real and fake together: the discriminator has no batch statistics.
        logits = discriminator.apply({"params": params}, jnp.concatenate([real, fake]))
        real_logits, fake_logits = logits[:batch], logits[batch:]
        loss = hparams.d_loss_scale * (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0))
        return loss, (real_logits, fake_logits)

    (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
    disc = disc.apply_gradients(grads, hparams)
    metrics = {"d_loss": loss, "d_real": jax.nn.sigmoid(real_logits).mean(),
               "d_fake": jax.nn.sigmoid(fake_logits).mean(),
               "fake_called_real": (fake_logits > 0).mean(dtype=jnp.float32),
               "d_grad_norm": optax.tree.norm(grads), "d_param_norm": optax.tree.norm(disc.params)}
    return disc, metrics


def gan_step(state: GANState, real_batch: jax.Array, noise_key: jax.Array) -> tuple[GANState, dict]:
    """One training step on real images [B, 784] (or [B, 28, 28]) in [-1, 1]; metrics are scalars.

    The study's template order: the generator step first, then the discriminator step on
    the same real batch and on the fakes of that one generator forward pass (detached),
    so each step draws one noise batch and runs the generator forward once.
    """
    real = real_batch.reshape(real_batch.shape[0], -1)
    noise = jax.random.normal(noise_key, (real.shape[0], latent_dim_of(state.gen.params)))
    gen, fake, gen_metrics = gen_step(state.gen, state.disc, noise, state.hparams)
    disc, disc_metrics = disc_step(state.disc, real, jax.lax.stop_gradient(fake), state.hparams)
    state = update_ema(state.replace(gen=gen, disc=disc, step=state.step + 1))
    return state, {**gen_metrics, **disc_metrics, "ema_norm": optax.tree.norm(state.ema_params)}


def score_noise(state: GANState, num_samples: int) -> jax.Array:
    """The run's fixed scoring noise [num_samples, latent]: the same at every checkpoint and on resume."""
    score_key = _key_for(state.key, _SCORE_STREAM)
    return jax.random.normal(score_key, (num_samples, latent_dim_of(state.gen.params)))


def scored_weights(state: GANState) -> tuple[str, ...]:
    """Which generators a concrete one-run state has: the raw one, and its EMA unless the EMA is disabled."""
    return ("raw", "ema") if float(state.hparams.ema_decay) else ("raw",)


@functools.partial(jax.jit, static_argnames=("weights",))
def score_generators(state: GANState, noise: jax.Array, classifier_variables: dict,
                     reference_features: jax.Array, weights: tuple[str, ...] = ("raw", "ema")
                     ) -> dict[str, dict[str, jax.Array]]:
    """IS and FID of eval-mode images of noise [M, latent] against reference features [M, F].

    One program for the generators ``weights`` names (``scored_weights``): ``{"raw": scores,
    "ema": scores}``, each with ``classifier_scores``'s inception_score, inception_std and fid.
    """
    generator = generator_for(state.gen.params)
    images = jnp.stack([generator.apply(generator_variables(state, w), noise, train=False) for w in weights])
    scores = classifier_scores_of_sets(classifier_variables, images, reference_features)
    return {w: {k: v[i] for k, v in scores.items()} for i, w in enumerate(weights)}


def grid_slots(steps_per_epoch: int, sample_every: int) -> int:
    """How many grids one epoch can hold: multiples of ``sample_every`` in any run of that many steps."""
    return math.ceil(steps_per_epoch / sample_every)


def train_epoch(state: GANState, images: jax.Array, noise: jax.Array, config: EpochConfig,
                batch_sharding: jax.sharding.NamedSharding | None = None, first_step: jax.Array | None = None
                ) -> tuple[GANState, dict, jax.Array, jax.Array]:
    """One epoch in ``lax.scan``: images uint8 [N, 28, 28] on the device, noise [25, latent].

    Batches come from a permutation drawn from (run key, epoch); the last N % batch_size
    images of each permutation are dropped (a full batch every step, PyTorch's drop_last).
    At the end the EMA's BatchNorm statistics are measured (``measure_ema_stats``).
    Returns the new state, metrics {name: [steps]}, grids [slots, 25, 784] and their steps
    [slots] (-1 for an unused slot): a grid is drawn *before* the update of every step
    whose count of updates done is a multiple of ``sample_every``, so it shows the
    generator after exactly that many updates, in ``config.grid_mode`` (see ``generate``).

    ``batch_sharding`` (data parallel, see ``epoch_function``) splits each real batch over
    devices; the noise and everything downstream follow it, and the batch-norm means and
    gradient sums over the global batch become all-reduces that XLA inserts.

    ``first_step`` (int32 [], default ``state.step``) is the step count the epoch starts from. A sweep
    passes its runs' shared count from outside its vmap: a grid predicate computed from the vmapped
    state would be batched, and vmap would turn the grid's ``cond`` into drawing it every step.
    """
    batch_size, sample_every = config.batch_size, config.sample_every
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
        grid = generate(gen, noise, config.grid_mode)
        return grids.at[slot].set(grid), grid_steps.at[slot].set(step), slot + 1

    def body(carry, step_input):
        """One step: maybe a grid, then a gan_step on the gathered, scaled batch."""
        state, buffers = carry
        batch_indices, index = step_input
        step = state.step if first_step is None else first_step + index
        buffers = jax.lax.cond(step % sample_every == 0, draw_grid, lambda b, *_: b, buffers, state.gen, step)
        real = images[batch_indices].astype(jnp.float32) / 127.5 - 1.0  # [0, 255] -> [-1, 1]
        if batch_sharding is not None:
            real = jax.lax.with_sharding_constraint(real, batch_sharding)
        noise_key = _key_for(state.key, _NOISE_STREAM, state.step)
        state, metrics = gan_step(state, real, noise_key)
        return (state, buffers), metrics

    init = (state, (grids, grid_steps, jnp.zeros((), jnp.int32)))
    step_inputs = (order.reshape(steps, batch_size), jnp.arange(steps, dtype=jnp.int32))
    (state, (grids, grid_steps, _)), metrics = jax.lax.scan(body, init, step_inputs)
    return measure_ema_stats(state, batch_size, batch_sharding), metrics, grids, grid_steps


def epoch_function(config: EpochConfig, mesh: Mesh | None = None) -> Callable:
    """``train_epoch(state, images, noise)`` of ``config`` jitted, state donated; cached, so runs in one
    process share compilations (the hyperparameters are in the state, so every setting shares one).

    With a ``mesh`` of several devices it is data parallel: every argument and result is
    replicated on the mesh (place them with ``parallel.put``) and each step's batch is split
    over it (``config.batch_size`` must be a multiple of the mesh size).
    """
    # One cache key for every way of saying "one device", so callers share one compilation.
    return _epoch_function(config, mesh if parallel.is_parallel(mesh) else None)


@functools.cache
def _epoch_function(config: EpochConfig, mesh: Mesh | None) -> Callable:
    """``epoch_function`` behind its cache."""
    if mesh is None:
        return jax.jit(functools.partial(train_epoch, config=config), donate_argnums=0)
    whole = parallel.replicated(mesh)
    return jax.jit(functools.partial(train_epoch, config=config, batch_sharding=parallel.batch(mesh)),
                   in_shardings=whole, out_shardings=whole, donate_argnums=0)

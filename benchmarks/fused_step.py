"""One discriminator pass on the fakes per GAN step, against the step as trained (two passes).

``jaxgan.gan.steps.gan_step`` runs the discriminator on the same fakes with the same weights
twice: once inside the generator's loss, once inside its own. ``fused_gan_step`` below runs it
once (``jax.vjp``) and pulls both gradients back from that one pass: the generator's through
the fakes, the discriminator's through its weights. Everything else (noise, BatchNorm, Adam,
the EMA) is ``gan_step``'s own.

    python -m benchmarks.fused_step                 # about 2 minutes on 2 CPU cores

Prints, for the same state and batches: how far one step and 100 steps of each differ (largest
relative difference of any parameter, the losses), then milliseconds per step of each as a
scanned epoch of 125 steps (median of ``--repeats`` epochs, the two alternating).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.configs.gan import GANConfig
from jaxgan.gan import steps
from jaxgan.models.gan import latent_dim_of


def fused_gan_step(state: steps.GANState, real_batch: jax.Array, noise_key: jax.Array, d_loss: str = "mean"):
    """``steps.gan_step`` with one discriminator pass on the fakes; same arguments and results."""
    real = real_batch.reshape(real_batch.shape[0], -1)
    noise = jax.random.normal(noise_key, (real.shape[0], latent_dim_of(state.gen.params)))
    gen, disc = state.gen, state.disc

    def generator(params):
        fake, updates = gen.apply_fn({"params": params, "batch_stats": gen.batch_stats}, noise,
                                     train=True, mutable=["batch_stats"])
        return fake, updates["batch_stats"]

    def discriminator(params, images):
        return disc.apply_fn({"params": params}, images)

    fake, generator_vjp, batch_stats = jax.vjp(generator, gen.params, has_aux=True)
    fake_logits, fake_vjp = jax.vjp(discriminator, disc.params, fake)
    real_logits, real_vjp = jax.vjp(lambda p: discriminator(p, real), disc.params)
    g_loss, g_cotangent = jax.value_and_grad(steps._bce)(fake_logits, 1.0)
    (gen_grads,) = generator_vjp(fake_vjp(g_cotangent)[1])
    scale = 0.5 if d_loss == "mean" else 1.0
    d_real, real_cotangent = jax.value_and_grad(lambda x: scale * steps._bce(x, 1.0))(real_logits)
    d_fake, fake_cotangent = jax.value_and_grad(lambda x: scale * steps._bce(x, 0.0))(fake_logits)
    disc_grads = jax.tree.map(jnp.add, real_vjp(real_cotangent)[0], fake_vjp(fake_cotangent)[0])
    gen = gen.apply_gradients(grads=gen_grads, batch_stats=batch_stats)
    disc = disc.apply_gradients(grads=disc_grads)
    state = steps.update_ema(state.replace(gen=gen, disc=disc, step=state.step + 1))
    return state, {"g_loss": g_loss, "d_loss": d_real + d_fake,
                   "g_grad_norm": optax.tree.norm(gen_grads), "d_grad_norm": optax.tree.norm(disc_grads)}


def _epoch(step_fn, state, batches, keys):
    """``len(batches)`` steps in ``lax.scan``; returns the state and the losses."""

    def body(state, xs):
        state, metrics = step_fn(state, *xs)
        return state, (metrics["g_loss"], metrics["d_loss"])

    return jax.lax.scan(body, state, (batches, keys))


def _largest_difference(a, b) -> float:
    """Largest max|a - b| / max|b| over the leaves of two parameter trees."""
    return max(float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-30))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main() -> None:
    """Compares the two steps and times them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fused_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs of each (default: 7)")
    parser.add_argument("--steps", type=int, default=125, help="steps per timed epoch (default: 125)")
    args = parser.parse_args()
    config = GANConfig()
    state = steps.init_state(config)
    key = jax.random.key(0)
    batches = jax.random.uniform(key, (args.steps, config.batch_size, 784), minval=-1.0, maxval=1.0)
    keys = jax.random.split(jax.random.fold_in(key, 1), args.steps)
    runs = {"two passes (as trained)": functools.partial(steps.gan_step, d_loss=config.d_loss),
            "one pass (fused)": functools.partial(fused_gan_step, d_loss=config.d_loss)}
    epochs = {name: jax.jit(functools.partial(_epoch, fn)) for name, fn in runs.items()}
    one = {name: jax.jit(fn)(state, batches[0], keys[0])[0] for name, fn in runs.items()}
    many = {name: epoch(state, batches[:100], keys[:100]) for name, epoch in epochs.items()}
    (a, b), (ma, mb) = one.values(), many.values()
    print(f"one step: parameters differ by {_largest_difference(b.gen.params, a.gen.params):.1e} "
          f"(generator), {_largest_difference(b.disc.params, a.disc.params):.1e} (discriminator)")
    print(f"100 steps: parameters differ by {_largest_difference(mb[0].gen.params, ma[0].gen.params):.1e} "
          f"(generator), {_largest_difference(mb[0].disc.params, ma[0].disc.params):.1e} (discriminator); "
          f"largest loss difference {float(np.max(np.abs(np.array(mb[1]) - np.array(ma[1])))):.1e}")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # alternating, so drift in the machine's load hits both alike
        for name, epoch in epochs.items():
            began = time.perf_counter()
            jax.block_until_ready(epoch(state, batches, keys))
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(t) / args.steps * 1e3 for name, t in times.items()}
    base = medians["two passes (as trained)"]
    for name, ms in medians.items():
        print(f"{name}: {ms:.2f} ms/step ({ms / base:.3f}x)")


if __name__ == "__main__":
    main()

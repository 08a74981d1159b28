"""The study's MLP GAN: Generator (latent -> 784 pixels in [-1, 1]) and Discriminator (784 -> logit).

Images travel flat: the generator returns ``[B, 784]`` and the discriminator flattens
whatever trailing shape it gets (``[B, 28, 28]`` or ``[B, 784]``). ``decode`` is the
inference forward pass: eval-mode images [n, 28, 28] from latents, for any saved generator.

Both follow the PyTorch template the study used, including its defaults where the study
is silent: Linear layers start from PyTorch's default initialisation (weights and biases
uniform in +-1/sqrt(fan_in)), and BatchNorm has BatchNorm1d's semantics (see ``BatchNorm1d``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.layers import torch_dense

IMAGE_SHAPE = (28, 28)
IMAGE_SIZE = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
LEAK = 0.2  # LeakyReLU negative slope, everywhere in both networks
MOMENTS = "batch_moments"  # the collection a train-mode pass sows each BatchNorm's batch mean and variance in
GEN_FEATURES = (128, 256, 512, 1024)
DISC_FEATURES = (512, 256)


class BatchNorm1d(nn.Module):
    """Batch normalisation over axis 0 with PyTorch BatchNorm1d's semantics: [B, F] -> [B, F].

    Training normalises with the batch mean and the biased batch variance and moves the
    running averages with weight ``1 - momentum`` (Flax's convention: 0.9 here is PyTorch's
    momentum=0.1); the running variance takes the *unbiased* batch variance, as PyTorch
    does and ``flax.linen.BatchNorm`` does not, which is why this is not ``nn.BatchNorm``.
    Evaluation normalises with the running averages. With the collection ``batch_moments``
    mutable, a train-mode pass also records the batch's mean and unbiased variance there.
    Variables: params ``scale``, ``bias``
    and batch_stats ``mean``, ``var``, each [F].
    """

    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """Normalises ``x`` [B, F] with batch (train) or running (eval) statistics."""
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        if train:
            mean = jnp.mean(x, axis=0)
            var = jnp.mean(jnp.square(x - mean), axis=0)  # two-pass, biased
            if not self.is_initializing():  # init must leave the running stats at (0, 1)
                n = x.shape[0]
                unbiased = var * (n / max(n - 1, 1))
                running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
                running_var.value = self.momentum * running_var.value + (1 - self.momentum) * unbiased
                # This batch's own statistics, for a caller that averages them over batches
                # (``batch_moments`` mutable; otherwise sow does nothing).
                self.sow(MOMENTS, "mean", mean, reduce_fn=lambda _, new: new)
                self.sow(MOMENTS, "var", unbiased, reduce_fn=lambda _, new: new)
        else:
            mean, var = running_mean.value, running_var.value
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class Generator(nn.Module):
    """z [B, latent] -> images [B, 784] in [-1, 1].

    Linear(latent, 128) LReLU, then (Linear, BatchNorm, LReLU) to 256, 512 and 1024, then
    Linear(1024, 784) tanh. ``train`` selects batch statistics (and updates the running
    ones, so call with ``mutable=["batch_stats"]``) or the running averages.
    """

    features: Sequence[int] = GEN_FEATURES
    out_features: int = IMAGE_SIZE

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        """Maps noise [B, latent] to flat images [B, 784]."""
        x = z
        for i, features in enumerate(self.features):
            x = torch_dense(features, x.shape[-1], name=f"dense{i + 1}")(x)
            if i > 0:  # the template's first layer has no BatchNorm
                x = BatchNorm1d(name=f"bn{i + 1}")(x, train=train)
            x = nn.leaky_relu(x, LEAK)
        x = torch_dense(self.out_features, x.shape[-1], name=f"dense{len(self.features) + 1}")(x)
        return jnp.tanh(x)


class Discriminator(nn.Module):
    """images [B, 28, 28] or [B, 784] -> logits [B] (the sigmoid lives in the loss).

    Linear(784, 512) LReLU, Linear(512, 256) LReLU, Linear(256, 1).
    """

    features: Sequence[int] = DISC_FEATURES

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        """Maps images [B, ...] to one logit each [B]."""
        x = images.reshape(images.shape[0], -1)
        for i, features in enumerate(self.features):
            x = torch_dense(features, x.shape[-1], name=f"dense{i + 1}")(x)
            x = nn.leaky_relu(x, LEAK)
        x = torch_dense(1, x.shape[-1], name=f"dense{len(self.features) + 1}")(x)
        return x[:, 0]


# Inference: the forward pass that turns latents into images, for any saved generator.


@functools.partial(jax.jit, static_argnums=0)
def _generate(generator: Generator, variables: dict, noise: jax.Array) -> jax.Array:
    """Eval-mode generator forward pass: noise [n, latent] -> [n, 784]."""
    return generator.apply(variables, noise, train=False)


def decode(gen_variables: dict, noise: jax.Array) -> jax.Array:
    """Eval-mode images float32 [n, 28, 28] in [-1, 1] from latents [n, latent] (e.g. an interpolation)."""
    # The layer sizes are read off the weights, so any saved generator decodes without its config.
    generator = generator_for(gen_variables["params"])
    images = _generate(generator, gen_variables, jnp.asarray(noise, jnp.float32))
    return images.reshape(-1, *IMAGE_SHAPE)


def latent_dim_of(gen_params: dict) -> int:
    """The latent size a generator's parameters expect."""
    return int(gen_params["dense1"]["kernel"].shape[0])


def _hidden_widths(params: dict) -> tuple[int, ...]:
    """The widths of every dense layer but the last, read off the kernels of ``params``."""
    depth = len([name for name in params if name.startswith("dense")])
    return tuple(params[f"dense{i}"]["kernel"].shape[1] for i in range(1, depth))


def generator_for(params: dict) -> Generator:
    """The Generator whose layer sizes the parameters have (read off their kernels)."""
    return Generator(features=_hidden_widths(params))


def discriminator_for(params: dict) -> Discriminator:
    """The Discriminator whose layer sizes the parameters have (read off their kernels)."""
    return Discriminator(features=_hidden_widths(params))


@functools.partial(jax.jit, static_argnums=0)
def _batch_moments(generator: Generator, params: dict, noise: jax.Array) -> dict:
    """Every BatchNorm's mean and unbiased variance over each batch of noise [K, B, latent]: leaves [K, F]."""

    def one(batch):
        """A train-mode pass over one batch; only what its BatchNorms sowed is kept."""
        stats = {"batch_stats": jax.tree.map(jnp.zeros_like, _zero_stats(generator, params))}
        _, sown = generator.apply({"params": params, **stats}, batch, train=True,
                                  mutable=["batch_stats", MOMENTS])
        return sown[MOMENTS]

    return jax.lax.map(one, noise)


def _zero_stats(generator: Generator, params: dict) -> dict:
    """Running statistics of the right shapes (their values are not used by a train-mode pass)."""
    return {name: {"mean": jnp.zeros_like(layer["scale"]), "var": jnp.ones_like(layer["scale"])}
            for name, layer in params.items() if name.startswith("bn")}


def recompute_batch_stats(params: dict, noise: jax.Array) -> dict:
    """Running BatchNorm statistics for generator ``params``, measured from noise [K, B, latent]: each
    layer's batch mean and unbiased variance averaged over the K train-mode passes.

    What stochastic weight averaging does for averaged weights (Izmailov et al., 2018, "bn_update",
    PyTorch's ``torch.optim.swa_utils.update_bn``): weights that were never trained as they stand
    (an EMA) get statistics of their own, measured, instead of tracked every step. Returns
    ``{"bn2": {"mean", "var"}, ...}`` as ``batch_stats``.
    """
    generator = generator_for(params)
    moments = _batch_moments(generator, params, jnp.asarray(noise, jnp.float32))
    # sow keeps a tuple per call; each pass sows once per layer and statistic.
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), moments, is_leaf=lambda x: isinstance(x, jax.Array))

"""Layers shared by the study's models: ``nn.Dense`` initialised as PyTorch's ``nn.Linear`` is."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_bias_init(fan_in: int):
    """PyTorch's ``nn.Linear`` bias initialiser: uniform in ±1/sqrt(fan_in)."""
    bound = 1.0 / fan_in**0.5

    def init(key, shape, dtype=jnp.float32):
        """Draws the biases."""
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# PyTorch's nn.Linear weights, kaiming_uniform(a=sqrt(5)): uniform in ±1/sqrt(fan_in).
# variance_scaling(1/3, fan_in, uniform) has limit sqrt(3 * (1/3) / fan_in) = 1/sqrt(fan_in).
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def torch_dense(features: int, fan_in: int, name: str, *, use_bias: bool = True) -> nn.Dense:
    """A Dense layer initialised like PyTorch's ``nn.Linear(fan_in, features)``: weights [fan_in, features]
    and biases [features] uniform in ±1/sqrt(fan_in) (``torch.nn.Linear.reset_parameters``)."""
    return nn.Dense(features, use_bias=use_bias, kernel_init=TORCH_KERNEL_INIT,
                    bias_init=torch_bias_init(fan_in), name=name)

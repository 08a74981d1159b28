"""The study's recurrent cells and one sequence classifier that scans either of them.

Both cells share one interface, so every test and the sweep take either:
``project(inputs [..., F]) -> [..., G]`` computes the input term of every time step in one
product (outside the time loop), ``initial_carry(batch)`` is the zero state, and
``__call__(carry, projected_t [B, G]) -> (carry, h [B, H])`` is one step.

Initialisation (``initialization``, one of INITS):

- ``"study"`` (the default) is what the study's own code did: every weight matrix of the
  equations is a PyTorch ``nn.Linear`` with its own bias, so for each gate the x-side Linear
  (fan_in = F, the input size: U(±1) for a scalar digit) and the h-side Linear (fan_in = H)
  each draw weights *and a bias* from U(±1/sqrt(fan_in)); the output Linear(H, 10) likewise.
  The two biases of a gate stay two parameters (``input.bias`` and ``hidden.bias``): their sum
  enters the equations, but the optimiser steps each of them, as it did in the study.
- ``"flax"``: input weights LeCun normal (``nn.Dense``'s default), recurrent weights orthogonal
  (as ``flax.linen.LSTMCell``), one zero bias per gate (``input.bias``), output LeCun normal.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.layers import torch_dense

INITS = ("study", "flax")


def _check_init(init: str) -> None:
    """Raises ValueError for an initialisation that is not one of INITS."""
    if init not in INITS:
        raise ValueError(f"unknown initialisation {init!r}; choose from {INITS}")


def _projections(width: int, input_size: int, hidden: int, init: str) -> tuple[nn.Dense, nn.Dense]:
    """The x-side (``input``: [F, width] + bias) and h-side (``hidden``: [H, width]) Dense layers."""
    _check_init(init)
    if init == "study":
        return (torch_dense(width, input_size, name="input"),
                torch_dense(width, hidden, name="hidden"))
    return (nn.Dense(width, kernel_init=nn.initializers.lecun_normal(), name="input"),
            nn.Dense(width, use_bias=False, kernel_init=nn.initializers.orthogonal(), name="hidden"))


class LSTMCell(nn.Module):
    """The study's LSTM: g=tanh, i,f,o=sigmoid; c = g*i + c*f; h = tanh(c)*o.

    Parameters: ``input.kernel`` [F, 4H] (blocks W_gx, W_ix, W_fx, W_ox), ``input.bias`` [4H]
    (b_gx, b_ix, b_fx, b_ox), ``hidden.kernel`` [H, 4H] (W_gh, W_ih, W_fh, W_oh) and, with the
    study's initialisation, ``hidden.bias`` [4H] (b_gh, b_ih, b_fh, b_oh). ``input_size`` is F,
    the fan-in of the x-side biases.
    """

    hidden: int
    input_size: int = 1
    initialization: str = "study"

    def setup(self):
        self.input, self.recurrent = _projections(4 * self.hidden, self.input_size, self.hidden,
                                                  self.initialization)

    def project(self, inputs: jax.Array) -> jax.Array:
        """Input term of all four gates, with their x-side biases: [..., F] -> [..., 4H]."""
        return self.input(inputs)

    def initial_carry(self, batch: int) -> tuple[jax.Array, jax.Array]:
        """h(0) = c(0) = 0: ([B, H], [B, H])."""
        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        return zeros, zeros

    def __call__(self, carry, projected):
        """One step: carry (c [B,H], h [B,H]), projected [B, 4H] -> (carry, h [B, H])."""
        c, h = carry
        gates = projected + self.recurrent(h)
        g, i, f, o = jnp.split(gates, 4, axis=-1)
        c = jnp.tanh(g) * nn.sigmoid(i) + c * nn.sigmoid(f)
        h = jnp.tanh(c) * nn.sigmoid(o)
        return (c, h), h


class RNNCell(nn.Module):
    """The study's vanilla RNN: h = tanh(W_hx x + b_hx + W_hh h + b_hh).

    Parameters: ``input.kernel`` [F, H], ``input.bias`` [H], ``hidden.kernel`` [H, H] and, with
    the study's initialisation, ``hidden.bias`` [H].
    """

    hidden: int
    input_size: int = 1
    initialization: str = "study"

    def setup(self):
        self.input, self.recurrent = _projections(self.hidden, self.input_size, self.hidden,
                                                  self.initialization)

    def project(self, inputs: jax.Array) -> jax.Array:
        """Input term with its bias: [..., F] -> [..., H]."""
        return self.input(inputs)

    def initial_carry(self, batch: int) -> jax.Array:
        """h(0) = 0: [B, H]."""
        return jnp.zeros((batch, self.hidden), jnp.float32)

    def __call__(self, carry, projected):
        """One step: h [B, H], projected [B, H] -> (h, h)."""
        h = jnp.tanh(projected + self.recurrent(carry))
        return h, h


CELLS = {"lstm": LSTMCell, "rnn": RNNCell}


def _masked_step(cell: nn.Module, carry, step_inputs):
    """One scanned step that keeps the old carry where the mask is False (left padding)."""
    projected, valid = step_inputs
    new_carry, _ = cell(carry, projected)
    keep = lambda new, old: jnp.where(valid[:, None], new, old)
    return jax.tree.map(keep, new_carry, carry), None


class SequenceClassifier(nn.Module):
    """Runs a cell over time from the zero state and classifies from the last h.

    ``__call__(inputs [B, T, F], mask [B, T] bool) -> logits [B, classes]``: p = W_ph h(T) + b_p.
    Steps where ``mask`` is False leave the state untouched, so a left-padded sequence gives
    the logits of the unpadded one. ``initialization`` picks it (see the module docstring).
    """

    cell: str = "lstm"
    hidden: int = 128
    num_classes: int = 10
    unroll: int = 1
    initialization: str = "study"

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array) -> jax.Array:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose from {sorted(CELLS)}")
        _check_init(self.initialization)
        cell = CELLS[self.cell](self.hidden, input_size=inputs.shape[-1], initialization=self.initialization,
                                name="cell")
        projected = cell.project(inputs)  # one product for all time steps, outside the loop
        scan = nn.scan(_masked_step, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=1, out_axes=1, unroll=self.unroll)
        final_carry, _ = scan(cell, cell.initial_carry(inputs.shape[0]), (projected, mask))
        h = final_carry[1] if self.cell == "lstm" else final_carry
        if self.initialization == "study":
            return torch_dense(self.num_classes, self.hidden, name="output")(h)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.lecun_normal(), name="output")(h)

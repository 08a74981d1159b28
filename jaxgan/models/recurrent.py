"""The study's recurrent cells and one sequence classifier that scans either of them.

Both cells share one interface, so every test and the sweep take either:
``project(inputs [..., F]) -> [..., G]`` computes the input term of every time step in one
product (outside the time loop), ``initial_carry(batch)`` is the zero state, and
``__call__(carry, projected_t [B, G]) -> (carry, h [B, H])`` is one step.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# Input weights: LeCun normal (Flax's Dense default); recurrent weights: orthogonal, as in
# flax.linen.LSTMCell; biases: zero. The README states this initialisation.
INPUT_INIT = nn.initializers.lecun_normal()
RECURRENT_INIT = nn.initializers.orthogonal()

GATES = ("g", "i", "f", "o")


class LSTMCell(nn.Module):
    """The study's LSTM: g=tanh, i,f,o=sigmoid; c = g*i + c*f; h = tanh(c)*o.

    Parameters: ``input.kernel`` [F, 4H] (blocks W_gx, W_ix, W_fx, W_ox), ``input.bias`` [4H]
    (b_g, b_i, b_f, b_o) and ``hidden.kernel`` [H, 4H] (W_gh, W_ih, W_fh, W_oh).
    """

    hidden: int

    def setup(self):
        self.input = nn.Dense(4 * self.hidden, kernel_init=INPUT_INIT, name="input")
        self.recurrent = nn.Dense(4 * self.hidden, use_bias=False, kernel_init=RECURRENT_INIT,
                                  name="hidden")

    def project(self, inputs: jax.Array) -> jax.Array:
        """Input term of all four gates, with their biases: [..., F] -> [..., 4H]."""
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
    """The study's vanilla RNN: h = tanh(W_hx x + W_hh h + b_h).

    Parameters: ``input.kernel`` [F, H], ``input.bias`` [H], ``hidden.kernel`` [H, H].
    """

    hidden: int

    def setup(self):
        self.input = nn.Dense(self.hidden, kernel_init=INPUT_INIT, name="input")
        self.recurrent = nn.Dense(self.hidden, use_bias=False, kernel_init=RECURRENT_INIT,
                                  name="hidden")

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
    the logits of the unpadded one.
    """

    cell: str = "lstm"
    hidden: int = 128
    num_classes: int = 10
    unroll: int = 1

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array) -> jax.Array:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose from {sorted(CELLS)}")
        cell = CELLS[self.cell](self.hidden, name="cell")
        projected = cell.project(inputs)  # one product for all time steps, outside the loop
        scan = nn.scan(_masked_step, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=1, out_axes=1, unroll=self.unroll)
        final_carry, _ = scan(cell, cell.initial_carry(inputs.shape[0]), (projected, mask))
        h = final_carry[1] if self.cell == "lstm" else final_carry
        return nn.Dense(self.num_classes, kernel_init=INPUT_INIT, name="output")(h)

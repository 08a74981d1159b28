"""Palindrome data made on the device, deterministic from a key.

``input_length`` T is the number of input digits: the palindrome is T+1 digits long, the
network reads the first T, and the label is the last digit (which equals the first).
T may be a traced value up to a static ``max_length``: sequences are left-padded to
``max_length`` and come with a mask, so every length shares one shape. Digit j of the
palindrome depends only on (key, j), never on ``max_length``, so the same key gives the
same palindromes whatever the padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NUM_DIGITS = 10
MAX_INPUT_LENGTH = 100  # longest T the CLI accepts; far past the study's 20
ENCODINGS = ("scalar", "onehot")


def make_palindromes(key: jax.Array, length: jax.Array | int, num: int,
                     max_length: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draws ``num`` palindromes of ``length``+1 digits.

    Returns (digits int32 [num, max_length] left-padded with 0, mask bool [num, max_length]
    True on real steps, labels int32 [num]).
    """
    num_free = max_length // 2 + 1  # digits 0..floor(T/2) determine the palindrome
    # One key per digit position keeps each column independent of max_length.
    free = jax.vmap(lambda j: jax.random.randint(jax.random.fold_in(key, j), (num,), 0, NUM_DIGITS),
                    out_axes=1)(jnp.arange(num_free))
    position = jnp.arange(max_length) - (max_length - length)  # index into the palindrome
    mask = position >= 0
    mirrored = jnp.clip(jnp.minimum(position, length - position), 0, num_free - 1)
    digits = jnp.where(mask[None, :], free[:, mirrored], 0)
    labels = free[:, 0]  # palindrome digit T mirrors digit 0
    return digits.astype(jnp.int32), jnp.broadcast_to(mask, digits.shape), labels.astype(jnp.int32)


def encode(digits: jax.Array, encoding: str) -> jax.Array:
    """Network inputs from digits [..., T]: ``scalar`` -> float [..., T, 1], ``onehot`` -> [..., T, 10]."""
    if encoding == "scalar":
        return digits[..., None].astype(jnp.float32)
    if encoding == "onehot":
        return jax.nn.one_hot(digits, NUM_DIGITS, dtype=jnp.float32)
    raise ValueError(f"unknown encoding {encoding!r}; choose from {ENCODINGS}")


def split_sizes(num: int, val_fraction: float) -> tuple[int, int]:
    """(train, validation) sizes; validation gets round(num * val_fraction)."""
    num_val = round(num * val_fraction)
    return num - num_val, num_val


def split_indices(key: jax.Array, num: int, val_fraction: float) -> tuple[jax.Array, jax.Array]:
    """A random, disjoint (train [n_train], validation [n_val]) split of indices 0..num-1."""
    num_train, _ = split_sizes(num, val_fraction)
    order = jax.random.permutation(key, num)
    return order[:num_train], order[num_train:]

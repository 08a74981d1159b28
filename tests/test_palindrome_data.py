"""Palindromes: labels, symmetry, padding, determinism, and a disjoint reproducible split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.data.palindrome import encode, make_palindromes, split_indices

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("length", [1, 2, 5, 10, 15, 20])
def test_inputs_and_label_form_a_palindrome_whose_last_digit_is_the_first(length):
    digits, mask, labels = map(np.asarray, make_palindromes(KEY, length, 64, 20))
    assert digits.shape == mask.shape == (64, 20)
    assert (mask.sum(1) == length).all()
    assert not mask[:, : 20 - length].any()  # left padding
    assert (digits[~mask] == 0).all()
    inputs = digits[:, 20 - length:]
    full = np.concatenate([inputs, labels[:, None]], axis=1)  # T + 1 digits
    np.testing.assert_array_equal(full, full[:, ::-1])
    np.testing.assert_array_equal(labels, inputs[:, 0])
    assert labels.min() >= 0 and labels.max() <= 9


def test_same_key_same_palindromes_whatever_the_padding_or_tracing():
    unpadded, _, labels = make_palindromes(KEY, 7, 32, 7)
    padded, _, labels_padded = make_palindromes(KEY, 7, 32, 25)
    np.testing.assert_array_equal(padded[:, -7:], unpadded)
    np.testing.assert_array_equal(labels_padded, labels)
    traced, _, _ = jax.jit(make_palindromes, static_argnums=(2, 3))(KEY, jnp.int32(7), 32, 25)
    np.testing.assert_array_equal(traced, padded)
    other, _, _ = make_palindromes(jax.random.PRNGKey(1), 7, 32, 7)
    assert not np.array_equal(other, unpadded)


def test_digits_are_spread_over_all_ten_values():
    _, _, labels = make_palindromes(KEY, 10, 2048, 10)
    counts = np.bincount(np.asarray(labels), minlength=10)
    assert counts.min() > 150  # about 205 each


def test_split_is_disjoint_complete_and_reproducible():
    train, val = split_indices(KEY, 2048, 0.2)
    assert len(train) == 1638 and len(val) == 410
    assert set(np.asarray(train)).isdisjoint(set(np.asarray(val)))
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(2048))
    train_again, val_again = split_indices(KEY, 2048, 0.2)
    np.testing.assert_array_equal(train, train_again)
    np.testing.assert_array_equal(val, val_again)
    assert not np.array_equal(split_indices(jax.random.PRNGKey(5), 2048, 0.2)[1], val)


def test_encodings():
    digits = jnp.array([[0, 3, 9]])
    np.testing.assert_array_equal(encode(digits, "scalar"), [[[0.0], [3.0], [9.0]]])
    onehot = encode(digits, "onehot")
    assert onehot.shape == (1, 3, 10)
    np.testing.assert_array_equal(onehot.argmax(-1), digits)
    with pytest.raises(ValueError, match="unknown encoding"):
        encode(digits, "binary")

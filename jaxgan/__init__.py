"""jaxgan: LSTM vs RNN on palindromes, and an MLP GAN on MNIST, in functional JAX."""

from jaxgan.errors import UserError

__all__ = ["UserError"]

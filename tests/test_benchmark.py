"""The benchmark's FLOP counts against hand computations, and the fused GAN step it measures."""

import numpy as np

from benchmarks.benchmark import gan_flops_per_step, palindrome_flops_per_sequence


def test_palindrome_flops_count_the_equations_forward_and_backward():
    # LSTM, T=20, H=128, scalar input: 4 gates x (128 + 1) inputs x 128 units per step,
    # plus the 128 -> 10 output; x2 for multiply-add, x3 for forward + backward.
    assert palindrome_flops_per_sequence("lstm", 20) == 3 * (20 * 2 * 4 * 128 * 129 + 2 * 128 * 10)
    assert palindrome_flops_per_sequence("rnn", 20) == 3 * (20 * 2 * 128 * 129 + 2 * 128 * 10)
    assert palindrome_flops_per_sequence("lstm", 10, inputs=10) == 3 * (10 * 8 * 128 * 138 + 2560)


def test_gan_flops_count_both_updates():
    g = 100 * 128 + 128 * 256 + 256 * 512 + 512 * 1024 + 1024 * 784  # 1,503,744 multiply-adds
    d = 784 * 512 + 512 * 256 + 256 * 1  # 532,736
    # generator update: G fwd+bwd and D fwd+input-grad on 64; discriminator update: D fwd+bwd on 128
    assert gan_flops_per_step(64) == 2 * 64 * (3 * g + 2 * d) + 2 * 128 * 3 * d
    assert 1.1e9 < gan_flops_per_step(64) < 1.2e9


def test_one_discriminator_pass_gives_the_step_as_trained():
    """The fused step of benchmarks/fused_step.py (one discriminator pass on the fakes) takes the
    same step as gan_step: the generator's update bit for bit, the discriminator's gradients to
    float32 rounding (its real and fake halves are summed in another order)."""
    import jax

    from benchmarks.fused_step import fused_gan_step
    from jaxgan.configs.gan import GANConfig
    from jaxgan.gan import steps

    state = steps.init_state(GANConfig(batch_size=16))
    real = jax.random.uniform(jax.random.key(0), (16, 784), minval=-1.0, maxval=1.0)
    key = jax.random.key(1)
    a, metrics_a = jax.jit(steps.gan_step)(state, real, key)
    b, metrics_b = jax.jit(fused_gan_step)(state, real, key)
    for x, y in zip(jax.tree.leaves(b.gen.params), jax.tree.leaves(a.gen.params), strict=True):
        np.testing.assert_array_equal(x, y)
    # Adam's moments are linear in the gradients and its square (the parameters are not: its first
    # step is about lr * sign(gradient), which turns rounding of a gradient near 0 into a full step).
    for x, y in zip(jax.tree.leaves(b.disc.opt_state), jax.tree.leaves(a.disc.opt_state), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5 * float(np.abs(y).max()))
    for name in ("g_loss", "d_loss"):
        np.testing.assert_allclose(metrics_b[name], metrics_a[name], rtol=1e-6)
    assert not np.array_equal(jax.tree.leaves(a.disc.params)[0], jax.tree.leaves(state.disc.params)[0])

"""The benchmark's FLOP counts against hand computations."""


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

"""Step-for-step parity of jaxgan's GAN training step with a plain PyTorch eager GAN.

jaxgan builds its GANState for a seed; every weight is copied into PyTorch models of the study's
architecture (Flax Dense kernels are [in, out], torch Linear weights [out, in]: transposed). Both
train on the same MNIST test images in the same order with the same noise: jaxgan runs its own
jitted epoch program (``epoch_function``: lax.scan, its shuffle, its noise keys), called once per
step on that step's 64 images, and this script redraws the shuffle and the noise with jaxgan's
keys and hands the same numbers to torch. The torch step follows ``jaxgan.gan.steps.gan_step``:
generator update first (non-saturating BCE), then the discriminator on the same real batch and
the detached fakes of that one forward pass, discriminator loss the mean of its two BCE means (the
study's; ``--disc-loss sum`` for both), BatchNorm1d momentum 0.1 and eps 1e-5 (running variance
unbiased), Adam(2e-4, (b1, 0.999), eps 1e-8).

Part 1, one step from the initial state: jaxgan's own ``gen_step`` and ``disc_step`` gradients
(read out through an "optimiser" that keeps them), its fakes and new BatchNorm statistics, against
torch float32 and torch float64 (the exact-arithmetic reference).

Part 2, N steps, two comparisons, reported every K steps:
  free    jaxgan and torch32 each follow their own trajectory; losses and the largest
          max|a - b| / max|b| of one tensor per group (parameters, BN statistics, Adam moments);
  1-step  before every step, a torch float32 and a torch float64 copy are set to jaxgan's state
          (weights, BN statistics, Adam moments and count) and take that step; the parameter
          *updates* and new BN statistics of jaxgan and of torch32 are compared with
          torch64's: the worst relative difference of the K steps, and in how many of the K steps
          any tensor's update is off by more than 1e-3 ("off").
The biases of the three Linear layers that feed a BatchNorm ("pre-BN biases") have their own
column and stay out of the 1-step check: BatchNorm cancels them, so their true gradient is 0 and
what they get is float rounding (~1e-9 in float32, ~1e-18 in float64), which Adam (eps 1e-8)
turns into steps of order lr in float32 only; they random-walk differently in every float32 run.

PyTorch is not a dependency of jaxgan; run this from a virtual environment holding torch 2.13 and
jaxgan (``python3 -m venv torchenv && torchenv/bin/pip install torch==2.13.0 -e .``), with the MNIST
test split's IDX files in DIR (or ``--dataset digits``):

    torchenv/bin/python -m benchmarks.gan_parity --dataset idx:DIR              # 300 steps, K=25
    torchenv/bin/python -m benchmarks.gan_parity --dataset idx:DIR --disc-loss sum

Expected (measured with the sum on the MNIST test split, seed 0, b1 0.5; 4 min on 2 shared CPU cores
under a load of ~6, about 1 min of it
start-up and compiling; ``--steps 100`` for a shorter run). Part 1: jaxgan within ~2e-6 of torch64,
as torch32 is (pre-BN bias gradients aside). Part 2, 1-step: in most steps both float32 updates are
within ~3e-4 (generator) and ~1e-3 (discriminator) of torch64's, but in about 1 step in 30 (jaxgan
10 of 300, torch32 7 of 300) one of them is off by 1e-3 to 2e-1: a LeakyReLU input lies within
float32 rounding (~1e-6) of 0, the two sides of the kink have slopes 1 and 0.2, rounding decides the
side, and that one sample's backward signal changes: a rank-1 change of the generator's gradient.
Part 2, free: the first such event separates the trajectories (~1e-1 relative by step 25, O(1) by
step 200). So the step is the same computation to float32 accuracy, and no float32 run, jaxgan's or
torch's, tracks exact arithmetic for hundreds of steps.
The mean and the sum differ only through Adam's eps, which is otherwise invariant to the loss scale:
measured with torch's loss halved against jaxgan's sum, in the first ~50 steps the discriminator's
updates differed by up to ~0.2 (relative to the largest update) in a few elements, later by ~1e-3,
and the free trajectories separated no faster than with the same loss on both sides.
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from jaxgan.configs.gan import GANConfig
from jaxgan.data.images import load_images
from jaxgan.gan import steps as jgan

PRE_BN_BIASES = ("gen.dense2.bias", "gen.dense3.bias", "gen.dense4.bias")
GROUPS = ("gen", "BN stats", "disc", "adam m,v", "preBN-bias")
OFF = 1e-3  # a step whose update is off float64's by more than this (relative) counts as "off"


class TorchGenerator(nn.Module):
    """Generator: 100->128 LReLU(0.2), (Linear, BatchNorm1d, LReLU) to 256/512/1024, ->784 tanh."""

    def __init__(self, latent: int = 100, features=(128, 256, 512, 1024), out: int = 784):
        super().__init__()
        sizes = (latent, *features)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.bns = nn.ModuleList(nn.BatchNorm1d(b, eps=1e-5, momentum=0.1) for b in features[1:])
        self.out = nn.Linear(features[-1], out)

    def forward(self, z):
        x = z
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i > 0:
                x = self.bns[i - 1](x)
            x = nn.functional.leaky_relu(x, 0.2)
        return torch.tanh(self.out(x))


class TorchDiscriminator(nn.Module):
    """784->512 LReLU(0.2) ->256 LReLU ->1 (a logit)."""

    def __init__(self, features=(512, 256)):
        super().__init__()
        sizes = (784, *features)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(features[-1], 1)

    def forward(self, x):
        for linear in self.linears:
            x = nn.functional.leaky_relu(linear(x), 0.2)
        return self.out(x)[:, 0]


def torch_named(gen: TorchGenerator, disc: TorchDiscriminator):
    """(jaxgan-style name, torch tensor) for every parameter and running statistic."""
    for prefix, linears in (("gen", [*gen.linears, gen.out]), ("disc", [*disc.linears, disc.out])):
        for i, lin in enumerate(linears, start=1):
            yield f"{prefix}.dense{i}.kernel", lin.weight
            yield f"{prefix}.dense{i}.bias", lin.bias
    for i, bn in enumerate(gen.bns, start=2):
        yield f"gen.bn{i}.scale", bn.weight
        yield f"gen.bn{i}.bias", bn.bias
        yield f"gen.bn{i}.mean", bn.running_mean
        yield f"gen.bn{i}.var", bn.running_var


def flip(name: str, t):
    """Between layouts: torch Linear weights are [out, in], Flax Dense kernels [in, out]."""
    return t.T if name.endswith("kernel") else t


def jax_tensors(state: jgan.GANState) -> dict[str, jax.Array]:
    """Every parameter, running statistic and Adam moment of jaxgan's state, by name."""
    out = {}
    for prefix, params in (("gen", state.gen.params), ("disc", state.disc.params)):
        for layer, leaves in params.items():
            out |= {f"{prefix}.{layer}.{leaf}": value for leaf, value in leaves.items()}
    for layer, leaves in state.gen.batch_stats.items():
        out |= {f"gen.{layer}.{leaf}": value for leaf, value in leaves.items()}
    for prefix, opt_state in (("gen", state.gen.opt_state), ("disc", state.disc.opt_state)):
        moments = opt_state[0]  # optax.adam's ScaleByAdamState
        for kind in ("mu", "nu"):
            for layer, leaves in getattr(moments, kind).items():
                out |= {f"adam.{kind}.{prefix}.{layer}.{leaf}": value for leaf, value in leaves.items()}
    return out


def torch_tensors(gen, disc, opt_g, opt_d) -> dict[str, torch.Tensor]:
    """The same names and (jaxgan) layouts for a torch pair and its optimisers."""
    out = {}
    for name, t in torch_named(gen, disc):
        out[name] = flip(name, t)
        state = opt_g.state.get(t) or opt_d.state.get(t)
        if state:
            out[f"adam.mu.{name}"] = flip(name, state["exp_avg"])
            out[f"adam.nu.{name}"] = flip(name, state["exp_avg_sq"])
    return out


def load_state(values: dict, counts: tuple[int, int], gen, disc, opt_g, opt_d) -> None:
    """Sets a torch pair to jaxgan's state (``jax_tensors``, numpy): weights, BN stats, Adam moments and
    counts."""
    dtype = gen.out.weight.dtype

    def value(name):
        return flip(name, torch.from_numpy(np.array(values[name], np.float32))).contiguous().to(dtype)

    with torch.no_grad():
        for name, t in torch_named(gen, disc):
            t.copy_(value(name))
            if isinstance(t, nn.Parameter):
                opt, count = (opt_g, counts[0]) if name.startswith("gen") else (opt_d, counts[1])
                opt.state[t] = {
                    "step": torch.tensor(float(count)),
                    "exp_avg": value(f"adam.mu.{name}"),
                    "exp_avg_sq": value(f"adam.nu.{name}"),
                }


def torch_pair(state: jgan.GANState, config: GANConfig, dtype):
    """(generator, discriminator, their Adams) in torch holding exactly the state's weights and statistics."""
    gen, disc = TorchGenerator().to(dtype), TorchDiscriminator().to(dtype)
    opts = [
        torch.optim.Adam(m.parameters(), lr=config.learning_rate, betas=(config.b1, config.b2), eps=1e-8)
        for m in (gen, disc)
    ]
    load_state({k: np.asarray(v) for k, v in jax_tensors(state).items()}, (0, 0), gen, disc, *opts)
    for opt in opts:
        opt.state.clear()  # a fresh optimiser, as jaxgan's
    return gen, disc, *opts


def bce(logits, target: float):
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def torch_step(gen, disc, opt_g, opt_d, real, noise, disc_loss="mean") -> tuple[float, float]:
    """jaxgan's gan_step in torch: generator first, then the discriminator on the detached fakes."""
    gen.train()
    fake = gen(noise)
    g_loss = bce(disc(fake), 1.0)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    opt_d.zero_grad()  # also drops what g_loss.backward() left in the discriminator
    logits = disc(torch.cat([real, fake.detach()]))
    d_loss = bce(logits[: len(real)], 1.0) + bce(logits[len(real) :], 0.0)
    if disc_loss == "mean":
        d_loss = d_loss / 2
    d_loss.backward()
    opt_d.step()
    return g_loss.item(), d_loss.item()


def rel(a, b) -> float:
    """max|a - b| / max|b| over one tensor."""
    a, b = (
        x.detach().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
        for x in (a, b)
    )
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def group_of(name: str) -> str | None:
    core = name.removeprefix("adam.mu.").removeprefix("adam.nu.")
    if core in PRE_BN_BIASES:  # their Adam moments hold rounding only: left out
        return "preBN-bias" if core == name else None
    if name.startswith("adam"):
        return "adam m,v"
    if name.endswith((".mean", ".var")):
        return "BN stats"
    return "gen" if name.startswith("gen") else "disc"


def worst_by_group(per_tensor: dict[str, float]) -> dict[str, float]:
    worst: dict[str, float] = {}
    for name, r in per_tensor.items():
        worst[group_of(name)] = max(worst.get(group_of(name), 0.0), r)
    return worst


def capture_grads(params, grads, opt_state, hparams):
    """In place of ``jgan.adam_update``: leaves the parameters alone and keeps the gradients as the state."""
    return params, grads


def one_step_check(state, config: GANConfig, real, noise) -> None:
    """Part 1: jaxgan's gen_step and disc_step gradients, fakes and BN stats vs torch32 and torch64."""
    adam_update, jgan.adam_update = jgan.adam_update, capture_grads  # the steps call it by its module name
    try:
        gen_after, fake, _ = jax.jit(jgan.gen_step)(state.gen, state.disc, jnp.asarray(noise), state.hparams)
        disc_after, _ = jax.jit(jgan.disc_step)(state.disc, jnp.asarray(real), fake, state.hparams)
    finally:
        jgan.adam_update = adam_update
    jax_grads = {f"gen.{layer}.{k}": v for layer, d in gen_after.opt_state.items() for k, v in d.items()}
    jax_grads |= {f"disc.{layer}.{k}": v for layer, d in disc_after.opt_state.items() for k, v in d.items()}
    jax_stats = {f"gen.{layer}.{k}": v for layer, d in gen_after.batch_stats.items() for k, v in d.items()}

    results = {}
    for dtype in (torch.float32, torch.float64):
        gen, disc, _, _ = torch_pair(state, config, dtype)
        t_fake = gen(torch.from_numpy(noise).to(dtype))
        bce(disc(t_fake), 1.0).backward()
        grads = {
            n: flip(n, t.grad)
            for n, t in torch_named(gen, disc)
            if n.startswith("gen") and t.grad is not None
        }
        disc.zero_grad()
        # The discriminator half gets jaxgan's fakes, so it is checked on its own.
        logits = disc(
            torch.cat([torch.from_numpy(real).to(dtype), torch.from_numpy(np.array(fake)).to(dtype)])
        )
        d_loss = bce(logits[: len(real)], 1.0) + bce(logits[len(real) :], 0.0)
        (d_loss / 2 if config.d_loss == "mean" else d_loss).backward()
        grads |= {n: flip(n, t.grad) for n, t in torch_named(gen, disc) if n.startswith("disc")}
        stats = {n: t for n, t in torch_named(gen, disc) if n.endswith((".mean", ".var"))}
        results[dtype] = (t_fake, grads, stats)
    t32, t64 = results[torch.float32], results[torch.float64]
    print("Part 1: one step from the initial state (gen_step; disc_step on jaxgan's fakes), max|a-b|/max|b|")
    print(f"  {'':26s} {'jax-torch64':>12s} {'torch32-torch64':>16s} {'jax-torch32':>12s}")
    rows = [("fakes", np.asarray(fake), t32[0], t64[0])]
    rows += [(f"grad {n}", jax_grads[n], t32[1][n], t64[1][n]) for n in t32[1]]
    rows += [(f"stat {n}", jax_stats[n], t32[2][n], t64[2][n]) for n in t32[2]]
    for name, a, b32, b64 in rows:
        note = "  (true value 0: rounding only)" if name.removeprefix("grad ") in PRE_BN_BIASES else ""
        print(f"  {name:26s} {rel(a, b64):12.1e} {rel(b32, b64):16.1e} {rel(a, b32):12.1e}{note}")


def update_differences(before: dict, after: dict, exact: dict) -> dict[str, float]:
    """{group: worst relative difference} of one step from ``before``: parameter updates and new BN
    statistics (pre-BN biases and the Adam moments left out: the updates are what the moments do)."""
    worst: dict[str, float] = {}
    for name, t in exact.items():
        group = group_of(name)
        if group not in ("gen", "disc", "BN stats"):
            continue
        a = after[name].detach().numpy() if isinstance(after[name], torch.Tensor) else np.asarray(after[name])
        b = t.detach().numpy()
        if group != "BN stats":  # float32 after - before is exact here (Sterbenz), float64 too
            a, b = a - before[name], b - before[name]
        worst[group] = max(
            worst.get(group, 0.0), float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25, help="K: report every K steps (default: 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--b1", type=float, default=0.5)
    parser.add_argument("--dataset", default="digits",
                        help="the images, as experiments' --dataset (default: digits; the figures above "
                             "are from idx:DIR with the MNIST test split)")
    parser.add_argument(
        "--disc-loss",
        choices=("sum", "mean"),
        default="mean",
        help="the discriminator loss of both jaxgan and torch (default: mean, the study's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 threads on this machine's 2 shared cores ran ~7x slower
    began = time.perf_counter()

    config = GANConfig(seed=args.seed, b1=args.b1, d_loss=args.disc_loss)
    batch = config.batch_size
    mnist = load_images(args.dataset, split="test").images
    state = jgan.init_state(config)
    print(
        f"seed {args.seed}, b1 {args.b1}, torch {torch.__version__}, jax {jax.__version__}; "
        f"discriminator loss = {args.disc_loss} of the two BCE terms (both)\n"
    )

    def noise_of(step):  # what gan_step draws at this step
        key = jgan._key_for(state.key, jgan._NOISE_STREAM, step)
        return np.array(jax.random.normal(key, (batch, config.latent_dim)))

    first = mnist[:batch].reshape(batch, -1).astype(np.float32) / 127.5 - 1.0
    one_step_check(state, config, first, noise_of(0))

    print(
        f"\nPart 2: {args.steps} steps. free: jaxgan and torch32 on their own trajectories, largest "
        "max|a-b|/max|b| of one tensor per group.\n1-step: from jaxgan's state before each step, that "
        "step's parameter updates and new BN stats vs torch64's;\n  worst of the K steps, and "
        f"'off' = in how many of the K steps any update is off by more than {OFF:g}."
    )
    print(
        f"{'step':>5} {'comparison':20s} {'g_loss':>17s} {'d_loss':>17s} "
        + " ".join(f"{g:>10s}" for g in GROUPS)
        + "  off"
    )
    free32 = torch_pair(state, config, torch.float32)
    follow = {
        label: torch_pair(state, config, dtype)
        for label, dtype in (("t32", torch.float32), ("t64", torch.float64))
    }
    # jaxgan's own epoch program, called once per step on that step's 64 images (an "epoch" of one step).
    epoch_fn = jgan.epoch_function(jgan.EpochConfig(batch, 10**9))
    grid_noise = jgan.grid_noise(state, config.latent_dim)
    block = {"jax": {}, "t32": {}}
    off = {"jax": 0, "t32": 0}
    for step in range(args.steps):
        images = mnist[np.arange(step * batch, (step + 1) * batch) % len(mnist)]
        order = np.asarray(
            jax.random.permutation(jgan._key_for(state.key, jgan._SHUFFLE_STREAM, step), batch)
        )
        real = images[order].reshape(batch, -1).astype(np.float32) / 127.5 - 1.0  # jaxgan's scaling
        noise = noise_of(step)
        before = {
            k: np.array(v) for k, v in jax_tensors(state).items()
        }  # copies: the epoch donates the state
        counts = (int(state.gen.step), int(state.disc.step))
        for label, dtype in (("t32", torch.float32), ("t64", torch.float64)):
            load_state(before, counts, *follow[label])
            torch_step(
                *follow[label],
                torch.from_numpy(real).to(dtype),
                torch.from_numpy(noise).to(dtype),
                args.disc_loss,
            )
        state, metrics, _, _ = epoch_fn(state, images, grid_noise)
        exact = torch_tensors(*follow["t64"])
        for label, after in (("jax", jax_tensors(state)), ("t32", torch_tensors(*follow["t32"]))):
            worst = update_differences(before, after, exact)
            off[label] += max(worst[g] for g in ("gen", "disc")) > OFF
            block[label] = {g: max(block[label].get(g, 0.0), r) for g, r in worst.items()}
        losses32 = torch_step(*free32, torch.from_numpy(real), torch.from_numpy(noise), args.disc_loss)
        if (step + 1) % args.every:
            continue
        jl = (float(metrics["g_loss"][0]), float(metrics["d_loss"][0]))
        free = {
            name: rel(value, a)
            for name, value in jax_tensors(state).items()
            for a in [torch_tensors(*free32).get(name)]
            if a is not None and group_of(name)
        }
        print(
            f"{step + 1:5d} {'free: jax-torch32':20s}{jl[0]:9.5f} {losses32[0]:8.5f} "
            f"{jl[1]:8.5f} {losses32[1]:8.5f} " + " ".join(f"{worst_by_group(free)[g]:10.1e}" for g in GROUPS)
        )
        for label in ("jax", "t32"):
            name = "1-step: jax-torch64" if label == "jax" else "1-step: torch32-torch64"
            print(
                f"{'':5s} {name:56s} "
                + " ".join(f"{block[label][g]:10.1e}" if g in block[label] else " " * 10 for g in GROUPS)
                + f"  {off[label]:3d}",
                flush=True,
            )
        block, off = {"jax": {}, "t32": {}}, {"jax": 0, "t32": 0}
    print("(g_loss, d_loss: jaxgan's and torch32's at that step)\n")
    print(f"free, after step {int(state.step)}, per tensor, max|jax-torch32|/max|torch32|:")
    for name, r in free.items():
        if not name.startswith("adam"):
            print(f"  {name:20s} {r:9.1e}")
    print(f"{time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()

"""The obvious alternative, for the README's speed comparison: the study in plain PyTorch eager.

A Python loop over time steps, torch.set_num_threads(2), the same sizes as jaxgan (hidden 128,
batch 128, 2,048 palindromes split 80/20, RMSprop lr 1e-3, 100 epochs with validation each epoch;
the GAN's MLPs at batch 64 with Adam). PyTorch is not a dependency of jaxgan: run this from its
own environment, e.g. ``python -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy``, then

    /tmp/torch/bin/python benchmarks/torch_reference.py            # Part 1, one seed + GAN steps/s
    /tmp/torch/bin/python benchmarks/torch_reference.py --gan-only

Prints one JSON line per measurement; the wall time of Part 1 includes process start-up.
"""

from __future__ import annotations

import argparse
import json
import time

_START = time.perf_counter()

import torch  # noqa: E402
from torch import nn  # noqa: E402


class Recurrent(nn.Module):
    """The study's LSTM or vanilla RNN over [B, T, 1] scalar digits, classifying from the last h."""

    def __init__(self, cell: str, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.cell, self.hidden = cell, hidden
        gates = 4 if cell == "lstm" else 1
        self.input = nn.Linear(1, gates * hidden)
        self.recurrent = nn.Linear(hidden, gates * hidden, bias=False)
        self.output = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.hidden)
        c = x.new_zeros(batch, self.hidden)
        for t in range(steps):
            z = self.input(x[:, t]) + self.recurrent(h)
            if self.cell == "lstm":
                g, i, f, o = z.chunk(4, dim=1)
                c = torch.tanh(g) * torch.sigmoid(i) + c * torch.sigmoid(f)
                h = torch.tanh(c) * torch.sigmoid(o)
            else:
                h = torch.tanh(z)
        return self.output(h)


def palindromes(length: int, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n palindromes of length+1 digits: the first ``length`` as inputs [n, length, 1], the last as label."""
    half = torch.randint(0, 10, (n, (length + 2) // 2), generator=generator)
    full = torch.cat([half, half.flip(1)[:, (length + 1) % 2:]], dim=1)[:, : length + 1]
    return full[:, :length, None].float(), full[:, length]


def train_palindrome(cell: str, length: int, seed: int, epochs: int) -> float:
    """Trains one run; returns the final validation accuracy."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = palindromes(length, 2048, generator)
    split = int(0.8 * len(x))
    model = Recurrent(cell)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    accuracy = 0.0
    for _ in range(epochs):
        order = torch.randperm(split, generator=generator)
        for start in range(0, split, 128):
            index = order[start:start + 128]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x[split:]).argmax(1) == y[split:]).float().mean().item()
    return accuracy


def gan_steps_per_second(steps: int) -> float:
    """Steps/s of the study's MLP GAN at batch 64 (generator then discriminator update)."""
    torch.manual_seed(0)

    def block(a, b):
        return [nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.2)]

    gen = nn.Sequential(nn.Linear(100, 128), nn.LeakyReLU(0.2), *block(128, 256), *block(256, 512),
                        *block(512, 1024), nn.Linear(1024, 784), nn.Tanh())
    disc = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(steps, 64, 784) * 2 - 1
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)

    def step(batch):
        fake = gen(torch.randn(64, 100))
        opt_g.zero_grad()
        bce(disc(fake), ones).backward()
        opt_g.step()
        opt_d.zero_grad()
        (bce(disc(batch), ones) + bce(disc(fake.detach()), zeros)).backward()
        opt_d.step()

    for i in range(20):  # warm-up
        step(real[i])
    began = time.perf_counter()
    for i in range(steps):
        step(real[i])
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=100, help="palindrome epochs per run (default: 100)")
    parser.add_argument("--gan-steps", type=int, default=500, help="timed GAN steps (default: 500)")
    parser.add_argument("--gan-only", action="store_true", help="skip Part 1")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if not args.gan_only:
        runs = {}
        began = time.perf_counter()
        for cell in ("rnn", "lstm"):
            for length in (5, 10, 15, 20):
                t = time.perf_counter()
                accuracy = train_palindrome(cell, length, seed=0, epochs=args.epochs)
                runs[f"{cell} T={length}"] = {"val_acc": round(accuracy, 3),
                                              "seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps({"part1_one_seed_s": round(time.perf_counter() - _START, 1),
                          "training_s": round(time.perf_counter() - began, 1), "runs": runs}), flush=True)
    print(json.dumps({"gan_steps_per_s": round(gan_steps_per_second(args.gan_steps), 1),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()

"""The study in plain PyTorch eager: the obvious alternative jaxgan is measured against.

A Python loop over time steps and over batches, as the study's own code ran. Part 1 follows the
study's setup: digits as one float each, every gate an x-side and an h-side ``nn.Linear`` with its
own bias (packed four gates to a matrix, the same parameters), the training batches in one fixed
order, RMSprop lr 1e-3, clipping at 10, batch 128, 2,048 palindromes split 80/20, 100 epochs with
validation after each. The GAN is the study's MLP GAN at batch 64 with Adam (lr 2e-4, b1 0.5, the
discriminator's loss the mean of its two BCE terms). PyTorch is not a dependency of jaxgan: run
this from an environment of its own that has PyTorch and jaxgan (jaxgan reads the images), e.g.
``python3 -m venv torchenv && torchenv/bin/pip install torch==2.13.0 -e .``, then

    torchenv/bin/python -m benchmarks.torch_reference --part1 --seeds 1         # one seed, timed
    torchenv/bin/python -m benchmarks.torch_reference --part1 --seeds 3         # the study's table
    torchenv/bin/python -m benchmarks.torch_reference --gan-epochs 10 --dataset idx:DIR --split test

Prints one JSON line per measurement (wall seconds include process start-up); ``--threads`` sets
PyTorch's threads (default 1: on a shared 2-core machine two threads ran several times slower).
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
        self.input = nn.Linear(1, gates * hidden)  # W_gx, W_ix, W_fx, W_ox and their biases
        self.recurrent = nn.Linear(hidden, gates * hidden)  # W_gh, ... and their own biases
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


def train_palindrome(cell: str, length: int, seed: int, epochs: int) -> dict:
    """Trains one run as the study did; returns its final validation accuracy and the first epoch at 99%."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = palindromes(length, 2048, generator)
    split = int(0.8 * len(x))
    model = Recurrent(cell)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    accuracy, first = 0.0, None
    for epoch in range(epochs):
        for start in range(0, split, 128):  # the study's loader: no shuffling
            optimizer.zero_grad()
            loss = loss_fn(model(x[start:start + 128]), y[start:start + 128])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x[split:split + 410]).argmax(1) == y[split:split + 410]).float().mean().item()
        if first is None and accuracy >= 0.99:
            first = epoch + 1
    return {"val_acc": round(accuracy, 3), "epoch_at_99": first}


def gan_models() -> tuple[nn.Module, nn.Module]:
    """The study's generator and discriminator (PyTorch's default initialisation)."""

    def block(a, b):
        return [nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.2)]

    gen = nn.Sequential(nn.Linear(100, 128), nn.LeakyReLU(0.2), *block(128, 256), *block(256, 512),
                        *block(512, 1024), nn.Linear(1024, 784), nn.Tanh())
    disc = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))
    return gen, disc


def train_gan(images: torch.Tensor, epochs: int, seed: int = 0) -> dict:
    """The study's GAN for ``epochs`` over images [N, 784] in [-1, 1] at batch 64 (the last partial
    batch dropped, as jaxgan does); returns steps and the seconds of the training loop."""
    torch.manual_seed(seed)
    gen, disc = gan_models()
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    steps = len(images) // 64
    began = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for i in range(steps):
            real = images[order[i * 64:(i + 1) * 64]]
            fake = gen(torch.randn(64, 100))
            opt_g.zero_grad()
            bce(disc(fake), ones).backward()
            opt_g.step()
            opt_d.zero_grad()
            ((bce(disc(real), ones) + bce(disc(fake.detach()), zeros)) / 2).backward()
            opt_d.step()
    seconds = time.perf_counter() - began
    return {"steps": steps * epochs, "train_s": round(seconds, 2),
            "steps_per_s": round(steps * epochs / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part1", action="store_true", help="Part 1: both models at T = 5, 10, 15, 20")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of Part 1 (default: 1)")
    parser.add_argument("--epochs", type=int, default=100, help="Part 1 epochs per run (default: 100)")
    parser.add_argument("--gan-epochs", type=int, default=0,
                        help="train the GAN this many epochs (default: 0, no GAN)")
    parser.add_argument("--dataset", default="digits", help="the GAN's images, as jaxgan's --dataset")
    parser.add_argument("--split", default="test", help="their split (default: test)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part1:
        runs = {}
        began = time.perf_counter()
        for cell in ("rnn", "lstm"):
            for length in (5, 10, 15, 20):
                for seed in range(args.seeds):
                    t = time.perf_counter()
                    runs[f"{cell} T={length} seed {seed}"] = {
                        **train_palindrome(cell, length, seed=seed, epochs=args.epochs),
                        "seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps({"part1_process_s": round(time.perf_counter() - _START, 1),
                          "part1_training_s": round(time.perf_counter() - began, 1), "runs": runs}),
              flush=True)
    if args.gan_epochs:
        from jaxgan.data.images import load_images

        image_set = load_images(args.dataset, split=args.split)
        images = torch.from_numpy(image_set.images.reshape(len(image_set.images), -1)).float() / 127.5 - 1.0
        result = train_gan(images, args.gan_epochs)
        print(json.dumps({"gan_process_s": round(time.perf_counter() - _START, 1), **result,
                          "images": len(images), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()

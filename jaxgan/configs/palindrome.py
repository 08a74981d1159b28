"""Part 1's settings: the study's LSTM-vs-RNN palindrome sweep.

    python -m experiments.palindrome

trains both models at T = 5, 10, 15, 20 with 3 seeds for 100 epochs (scalar digits, the study's
initialisation, unshuffled batches). Expected: the LSTM at >= 0.99 validation accuracy at every
length, the RNN at 1.00 at T=5 and near chance (about 0.1) at T=15 and 20, as the study found;
about 20 minutes on a 2-core CPU. ``get_config()`` returns these defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jaxgan.configs.base import INT32_MAX, check, check_total_steps, seed_setting, setting
from jaxgan.data.palindrome import ENCODINGS, MAX_INPUT_LENGTH, split_sizes
from jaxgan.errors import UserError
from jaxgan.models.recurrent import CELLS, INITS
from jaxgan.runtime.parallel import STRATEGIES

# Upper bounds on what sizes the sweep's arrays, far above the study's (100 epochs, 3 seeds, 128 units,
# 2048 palindromes), so that a mistyped value is refused before anything is allocated.
MAX_EPOCHS = 100_000
MAX_SEEDS = 1000
MAX_HIDDEN = 8192
MAX_EXAMPLES = 1_000_000


def _encodings(choice: str) -> tuple[str, ...]:
    """``--encoding`` to the encodings to run: one, or ``both``."""
    return tuple(ENCODINGS) if choice == "both" else (choice,)


def _lengths(groups: list[Sequence[int]]) -> tuple[int, ...]:
    """``--lengths`` (each a length or a range) to the sorted distinct lengths.

    A range's ends are checked against the bounds before it is expanded: 1:100000000000 is refused,
    not a hundred billion numbers in memory.
    """
    for group in groups:
        for t in (group[0], group[-1]) if len(group) else ():
            if not 1 <= t <= MAX_INPUT_LENGTH:
                raise UserError(f"input length {t} is out of range: it must be between 1 and "
                                f"{MAX_INPUT_LENGTH}")
    return tuple(sorted({t for group in groups for t in group}))


@dataclasses.dataclass(frozen=True)
class PalindromeConfig:
    """Every setting of a Part 1 study (the study's own by default); one sweep per model and encoding."""

    models: tuple[str, ...] = setting(
        ("rnn", "lstm"), "models to train", choices=sorted(CELLS), item="model",
        cli={"nargs": "+", "choices": sorted(CELLS)})
    lengths: tuple[int, ...] = setting(
        (5, 10, 15, 20), f"input lengths T, digits read before predicting the last one "
        f"(1..{MAX_INPUT_LENGTH}); a range START:STOP:STEP includes STOP, so 5:60:5 is 5 10 ... 60",
        minimum=1, maximum=MAX_INPUT_LENGTH, item="input length",
        cli={"nargs": "+", "metavar": "T", "type": "lengths"}, parse=_lengths)
    num_seeds: int = setting(3, "seeds per length: seed, seed + 1, ...", flag="--seeds", minimum=1,
                             maximum=MAX_SEEDS, note="every seed of every length is one more run the sweep "
                             "trains at once, and holds in memory")
    seed: int = seed_setting("the first seed")
    epochs: int = setting(100, "training epochs in total; a finished or interrupted study with the same "
                          "checkpoints continues to this many", minimum=1, maximum=MAX_EPOCHS,
                          note="every epoch's metrics of every run are held in memory and in each checkpoint",
                          resume=False)
    encodings: tuple[str, ...] = setting(
        ("scalar",), "how a digit enters the network: scalar = one float (input size 1, as the study's "
        "code), onehot = 10 inputs, both = run each", flag="--encoding", choices=ENCODINGS, item="encoding",
        cli={"choices": [*ENCODINGS, "both"], "nargs": None}, parse=_encodings)
    init: str = setting(
        "study", "initialisation: study = every weight and both biases of each gate (x-side and h-side) "
        "from U(±1/sqrt(fan_in)), as the study's nn.Linear layers; flax = LeCun-normal input, orthogonal "
        "recurrent weights and one zero bias per gate", choices=INITS, legacy="flax")
    shuffle: bool = setting(False, "reshuffle the training batches every epoch from the run's key; "
                            "--no-shuffle keeps one fixed order, as the study's loader did", legacy=True)
    hidden: int = setting(128, "hidden units", minimum=1, maximum=MAX_HIDDEN,
                          note="every run holds hidden x hidden recurrent weights per gate")
    num_examples: int = setting(2048, "palindromes per run, split into train/validation", minimum=1,
                                maximum=MAX_EXAMPLES, note="every run holds its palindromes on the device")
    val_fraction: float = setting(0.2, "share of the palindromes held out for validation", flag=None,
                                  above=0.0, below=1.0)
    batch_size: int = setting(128, "batch size; the last batch of an epoch is the remainder", minimum=1)
    learning_rate: float = setting(1e-3, "RMSprop learning rate (PyTorch semantics)", flag="--lr",
                                   aliases=("--learning-rate",), above=0.0)
    clip_norm: float = setting(10.0, "global gradient-norm clipping threshold", above=0.0)
    unroll: int = setting(1, "time steps unrolled per scan iteration; a speed knob only", minimum=1)
    strategy: str = setting(
        "auto", "how one program runs all (length, seed) pairs: vmap batches them at the longest length "
        "(best on GPU/TPU), map runs them in turn, grouped by length so each scans only its own steps "
        "(faster on CPU); auto picks by backend; results are the same to float rounding",
        flag="--sweep-strategy", choices=STRATEGIES, resume=False)
    chunk_epochs: int = setting(10, "epochs run on the device between progress updates and checkpoints",
                                minimum=1, resume=False)
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep per sweep", minimum=1,
                                    resume=False)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds: ``seed`` .. ``seed + num_seeds - 1``."""
        return tuple(range(self.seed, self.seed + self.num_seeds))

    @property
    def sweeps(self) -> list[tuple[str, str]]:
        """(model, encoding) of every sweep, in the order they run."""
        return [(model, encoding) for encoding in self.encodings for model in self.models]

    def validate(self) -> None:
        """Raises one UserError for the first setting that is out of range or does not fit the data."""
        check(self)
        last = self.seed + self.num_seeds - 1
        if last > INT32_MAX:  # the sweep holds its seeds as int32
            raise UserError(f"the palindrome sweep would take seeds {self.seed} to {last}, beyond the int32 "
                            f"the sweep holds them in (at most {INT32_MAX})")
        num_train, num_val = split_sizes(self.num_examples, self.val_fraction)
        if num_train < 1 or num_val < 1:
            raise UserError(f"{self.num_examples} palindromes are too few to split into training and "
                            f"validation examples: use at least 3")
        if self.batch_size > num_train:
            raise UserError(f"the batch size {self.batch_size} is larger than the {num_train} training "
                            f"examples of a run ({self.num_examples} palindromes less "
                            f"{num_val} for validation)")
        check_total_steps(self.epochs, -(-num_train // self.batch_size),
                          f"{num_train} training palindromes in batches of {self.batch_size}")


def get_config() -> PalindromeConfig:
    """The study's settings."""
    return PalindromeConfig()

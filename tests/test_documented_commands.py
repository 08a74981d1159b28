"""Every ``python -m experiments.NAME ...`` command the README and the scripts' ``--help`` show is
accepted by that script's own parser and its settings pass the config's checks, and none of them
names a path that only exists on a development machine."""

from __future__ import annotations

import ast
import importlib
import logging
import pathlib
import re
import shlex

import pytest

from experiments import _cli
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.configs.palindrome import PalindromeConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMAND = re.compile(r"python3? -m (experiments\.\w+)((?:\\\n|[^\n`#\\])*)")
CONFIGS = {"palindrome": PalindromeConfig, "train_gan": GANConfig, "train_classifier": ClassifierConfig}


def _sources() -> dict[str, str]:
    """The README and the docstring of every script (what ``--help`` prints above the flags)."""
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for path in sorted((ROOT / "experiments").glob("*.py")):
        texts[f"experiments/{path.name}"] = ast.get_docstring(ast.parse(path.read_text())) or ""
    return texts


def _commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for where, text in _sources().items():
        for match in COMMAND.finditer(text):
            tail = match.group(2).replace("\\\n", " ")
            if "[" in tail or match.group(1).split(".")[1].isupper():
                continue  # a usage line ("[--data-dir DIR]", "experiments.NAME"), not a command
            found.append((where, match.group(1), shlex.split(tail)))
    return found


COMMANDS = _commands()


def test_the_readme_and_every_help_show_commands():
    where = {w for w, _, _ in COMMANDS}
    assert "README.md" in where and "experiments/train_gan.py" in where
    assert len([c for c in COMMANDS if c[0] == "README.md"]) >= 10


@pytest.mark.parametrize(
    "where,module,argv", COMMANDS, ids=[f"{w}:{m} {' '.join(a)}" for w, m, a in COMMANDS]
)
def test_documented_command_parses_and_validates(where, module, argv):
    name = module.split(".")[1]
    script = importlib.import_module(module)
    if not hasattr(script, "parse_args"):  # prepare_mnist: its flags are checked by --help alone
        with pytest.raises(SystemExit) as exit_:
            script.main(["--help"])
        assert exit_.value.code == 0
        return
    args = script.parse_args(argv)
    if name in CONFIGS:
        extra = {"dataset": args.dataset, "split": args.split} if name == "train_classifier" else {}
        _cli.config_from_args(CONFIGS[name], args, **extra).validate()
    for value in argv:
        assert "shared" not in value and "/tmp" not in value, f"{where}: {value} is a developer's path"


def test_no_developer_paths_in_the_readme():
    text = (ROOT / "README.md").read_text()
    for needle in ("../shared", "/tmp/", "/work/", "issue "):
        assert needle not in text, needle


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
README_EXAMPLES = PYTHON_BLOCK.findall((ROOT / "README.md").read_text())


@pytest.fixture(scope="module")
def trained_gan_folder(tmp_path_factory) -> pathlib.Path:
    """A folder whose ``runs/gan`` holds a GAN trained for one epoch (small layers, 128 digits): the
    default paths the README's examples use, relative to it."""
    from jaxgan.configs.gan import GANConfig
    from jaxgan.data.images import ImageSet, load_images
    from jaxgan.gan.train import train_and_evaluate

    folder = tmp_path_factory.mktemp("readme")
    config = GANConfig(gen_features=(32, 64), disc_features=(64, 32), epochs=1)
    digits = load_images("digits")
    train_and_evaluate(config, str(folder / "runs" / "gan"),
                       data=ImageSet(images=digits.images[:128], labels=None, source=digits.source))
    return folder


def test_the_readme_has_python_examples():
    assert README_EXAMPLES


@pytest.mark.parametrize("number, code", list(enumerate(README_EXAMPLES)))
def test_every_python_example_in_the_readme_runs_as_written_and_quietly(number, code, trained_gan_folder,
                                                                         monkeypatch, capsys, caplog):
    """Run from a folder that holds what the README's paths name; a restore for reading logs no warning."""
    monkeypatch.chdir(trained_gan_folder)
    with caplog.at_level(logging.WARNING):
        exec(compile(code, f"README.md python example {number}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "WARNING" not in out.err, out.err
    if "restore_generator" in code:
        assert "step 2, ema weights: (16, 28, 28)" in out.out

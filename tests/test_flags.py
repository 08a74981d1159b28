"""The scripts' flags: one name per setting in every script, every flag listed in the help (``--debug``
too), none that means nothing for its script, and the models' widths among them."""

from __future__ import annotations

import argparse
import importlib
import pathlib

import pytest

from experiments import _cli
from jaxgan.configs.classifier import ClassifierConfig
from jaxgan.configs.gan import GANConfig
from jaxgan.configs.palindrome import PalindromeConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = sorted(path.stem for path in (ROOT / "experiments").glob("*.py") if not path.stem.startswith("_"))


def _parser_of(name: str) -> argparse.ArgumentParser:
    """The script's parser, caught as its ``--help`` is about to print it."""
    module = importlib.import_module(f"experiments.{name}")
    caught = []
    real = argparse.ArgumentParser.parse_args

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = catch
    try:
        with pytest.raises(SystemExit):
            module.main([])
    finally:
        argparse.ArgumentParser.parse_args = real
    return caught[0]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_flag_is_listed_and_debug_is_one(name):
    parser = _parser_of(name)
    hidden = [a.option_strings for a in parser._actions if a.help == argparse.SUPPRESS]
    assert not hidden
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert "--debug" in flags
    assert ("--no-compile-cache" in flags) == (name != "prepare_mnist")  # it compiles nothing


def test_prepare_mnist_refuses_the_compile_cache_flag():
    with pytest.raises(Exception, match="unrecognized arguments: --no-compile-cache"):
        importlib.import_module("experiments.prepare_mnist").main(["--no-compile-cache"])


@pytest.mark.parametrize("name,cls", [("palindrome", PalindromeConfig), ("train_gan", GANConfig),
                                      ("train_classifier", ClassifierConfig)])
def test_the_learning_rate_is_lr_everywhere_and_learning_rate_too(name, cls):
    script = importlib.import_module(f"experiments.{name}")
    short = _cli.config_from_args(cls, script.parse_args(["--lr", "0.01"]))
    long = _cli.config_from_args(cls, script.parse_args(["--learning-rate", "0.01"]))
    assert short == long and short.learning_rate == 0.01
    assert short != cls()


def test_one_flag_names_one_setting_in_every_script():
    """A config field has the same flag in every script that offers it."""
    names: dict[str, set[str]] = {}
    for cls in (PalindromeConfig, GANConfig, ClassifierConfig):
        parser = argparse.ArgumentParser()
        _cli.add_config_flags(parser, cls)
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                names.setdefault(action.dest, set()).add(tuple(action.option_strings))
    assert {dest: flags for dest, flags in names.items() if len(flags) > 1} == {}


def test_the_model_widths_are_flags():
    from experiments import train_classifier, train_gan

    gan = _cli.config_from_args(GANConfig, train_gan.parse_args(["--gen-features", "32", "64",
                                                                 "--disc-features", "48"]))
    assert (gan.gen_features, gan.disc_features) == ((32, 64), (48,))
    gan.validate()
    classifier = _cli.config_from_args(ClassifierConfig, train_classifier.parse_args(
        ["--conv1", "8", "--conv2", "16", "--hidden", "24", "--dropout", "0.1", "--max-shift", "0"]))
    assert (classifier.conv1, classifier.conv2, classifier.hidden, classifier.dropout,
            classifier.max_shift) == (8, 16, 24, 0.1, 0)
    classifier.validate()
    with pytest.raises(Exception, match="generator width must be at least 1"):
        _cli.config_from_args(GANConfig, train_gan.parse_args(["--gen-features", "0"])).validate()

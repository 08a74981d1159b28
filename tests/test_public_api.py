"""The names ``jaxgan`` exports resolve to the library's own objects, lazily: ``import jaxgan`` imports
neither JAX nor matplotlib, and asking for one name imports only what that name needs."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import jaxgan

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _probe(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter (from the repository) and returns the JSON it prints last."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_jaxgan_imports_no_jax():
    found = _probe("import json, sys, jaxgan; print(json.dumps("
                   "{m: m in sys.modules for m in ('jax', 'jaxlib', 'flax', 'matplotlib')}))")
    assert found == {"jax": False, "jaxlib": False, "flax": False, "matplotlib": False}


def test_a_name_imports_only_what_it_needs():
    """The image loader is numpy only; a trainer brings JAX."""
    found = _probe("import json, sys, jaxgan; jaxgan.UserError; jaxgan.load_images; "
                   "before = 'jax' in sys.modules; jaxgan.train_gan; "
                   "print(json.dumps([before, 'jax' in sys.modules]))")
    assert found == [False, True]


def test_every_public_name_is_the_librarys_own_object():
    from jaxgan.classifier import restore as classifier_restore
    from jaxgan.classifier import train as classifier_train
    from jaxgan.configs import classifier, gan, palindrome
    from jaxgan.gan import generate, interpolate
    from jaxgan.gan import train as gan_train
    from jaxgan.models import gan as gan_models
    from jaxgan.palindrome import summary
    from jaxgan.palindrome import train as palindrome_train

    assert jaxgan.PalindromeConfig is palindrome.PalindromeConfig
    assert jaxgan.GANConfig is gan.GANConfig and jaxgan.InterpolationConfig is gan.InterpolationConfig
    assert jaxgan.ClassifierConfig is classifier.ClassifierConfig
    assert jaxgan.train_palindrome is palindrome_train.train_and_evaluate
    assert jaxgan.train_gan is gan_train.train_and_evaluate
    assert jaxgan.train_classifier is classifier_train.train_and_evaluate
    assert jaxgan.finding is summary.finding and jaxgan.summary_markdown is summary.summary_markdown
    assert jaxgan.restore_generator is generate.restore_generator and jaxgan.sample is generate.sample
    assert jaxgan.decode is gan_models.decode and jaxgan.latent_dim_of is gan_models.latent_dim_of
    assert jaxgan.restore_classifier is classifier_restore.restore_classifier
    assert jaxgan.load_classify_fn is classifier_restore.load_classify_fn
    assert jaxgan.interpolation_rows is interpolate.interpolation_rows
    for name in jaxgan.__all__:
        assert getattr(jaxgan, name) is not None, name


def test_all_the_lazy_table_and_the_type_checking_imports_agree():
    """``__all__`` is written out for linters, the TYPE_CHECKING imports for editors: both name exactly
    the lazily imported names (and UserError), from the same modules."""
    assert set(jaxgan.__all__) == {"UserError", *jaxgan._LAZY}
    assert len(jaxgan.__all__) == len(set(jaxgan.__all__))
    tree = ast.parse((ROOT / "jaxgan" / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING")
    imported = {alias.asname or alias.name: (node.module, alias.name)
                for node in guarded.body for alias in node.names}
    assert imported == jaxgan._LAZY


def test_an_unknown_name_is_an_attribute_error_and_dir_lists_the_public_names():
    try:
        jaxgan.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("jaxgan.no_such_name did not raise")
    assert set(jaxgan.__all__) <= set(dir(jaxgan))

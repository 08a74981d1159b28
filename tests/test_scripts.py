"""The scripts as installed: the package holds them, the commands run them, they run from any folder."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib

import setuptools

from experiments import _commands

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = sorted(path.stem for path in (ROOT / "experiments").glob("*.py") if not path.stem.startswith("_"))


def test_the_package_installs_the_scripts_and_not_the_benchmarks():
    found = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=found["include"], exclude=found.get("exclude", ()))
    assert "experiments" in packages and "jaxgan" in packages and "jaxgan.runtime" in packages
    assert not [p for p in packages if p.split(".")[0] in ("benchmarks", "tests")]
    assert (ROOT / "experiments" / "__init__.py").is_file()


def test_every_script_has_a_command_that_runs_its_main():
    commands = PYPROJECT["project"]["scripts"]
    assert sorted(_commands.SCRIPTS) == SCRIPTS
    for name in SCRIPTS:
        command = f"jaxgan-{name.replace('_', '-')}"
        assert commands[command] == f"experiments._commands:{name}", command
        assert getattr(_commands, name).__name__ == name


def _env() -> dict[str, str]:
    """A CLI subprocess's environment, the repository importable as an install makes it (the test does
    not depend on how this checkout was installed), compiled programs not kept."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "JAX_PLATFORMS": "cpu", "JAXGAN_COMPILATION_CACHE": "0"}


def test_a_script_runs_from_another_folder_and_writes_where_it_was_called(tmp_path):
    help_ = subprocess.run([sys.executable, "-m", "experiments.palindrome", "--help"], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0, help_.stderr
    assert "python -m experiments.palindrome" in help_.stdout
    flags = ["--models", "rnn", "--lengths", "3", "--seeds", "1", "--epochs", "1", "--hidden", "4",
             "--num-examples", "32", "--batch-size", "8", "--workdir", "out/run",
             "--checkpoint-dir", "out/ck"]
    done = subprocess.run([sys.executable, "-m", "experiments.palindrome", *flags], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "run" / "results.json").is_file()
    assert any((tmp_path / "out" / "ck").iterdir())


def test_a_command_is_its_script(tmp_path):
    """``jaxgan-train-gan ARGS`` is ``python -m experiments.train_gan ARGS``: the same parser, and bad
    input the same one line and exit status 2."""
    call = ("import sys; from experiments import _commands; sys.argv = ['jaxgan-train-gan', *sys.argv[1:]]; "
            "_commands.train_gan()")
    done = subprocess.run([sys.executable, "-c", call, "--help"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--gen-features" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-c", call, "--lr", "-1"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: --lr must be above 0, not -1.0"

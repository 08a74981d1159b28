"""docs/api.md's Python examples run as written, in order, in one namespace, from an empty folder; what
they say they write is there, their results have the shapes and dtypes the page gives; run again in
the same folder they resume, train nothing and give the same numbers."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def run_examples(folder: pathlib.Path, namespace: dict | None = None) -> tuple[dict, str]:
    """Executes every Python block of the page in order from ``folder``; (namespace, printed text)."""
    namespace = {"__name__": "__api_docs__"} if namespace is None else namespace
    printed = io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(printed):
        for number, code in enumerate(BLOCKS):
            exec(compile(code, f"docs/api.md python example {number}", "exec"), namespace)
    return namespace, printed.getvalue()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[pathlib.Path, dict, str]:
    """The folder the examples ran in, their namespace and what they printed."""
    folder = tmp_path_factory.mktemp("api-docs")
    namespace, printed = run_examples(folder)
    return folder, namespace, printed


def test_the_page_has_an_example_of_each_call():
    code = "\n".join(BLOCKS)
    for call in ("train_palindrome", "load_images", "train_gan", "train_classifier", "restore_generator",
                 "sample", "decode", "load_classify_fn", "interpolation_rows", "rows_figure", "save_grid"):
        assert f"jaxgan.{call}(" in code, call


def test_the_examples_write_the_runs_and_pictures_they_describe(first_run):
    folder, _, printed = first_run
    runs = folder / "runs"
    for name in ("api-palindrome/config.json", "api-palindrome/results.json", "api-palindrome/summary.md",
                 "api-palindrome/curves_T5_scalar.png", "api-gan/config.json", "api-gan/metrics.jsonl",
                 "api-gan/progress.png", "api-gan/losses.png", "api-classifier/metrics.jsonl",
                 "api-samples.png", "api-interpolation.png"):
        assert (runs / name).is_file(), name
    assert any((runs / "api-gan" / "checkpoints").iterdir())
    assert list((runs / "api-gan" / "samples").glob("step_*.png"))
    assert json.loads((runs / "api-gan" / "config.json").read_text())
    assert "rnn/scalar: epoch 5/5, val_acc" in printed and "lstm/scalar: epoch 5/5, val_acc" in printed
    assert "step 880, ema weights" in printed  # 20 epochs of 1,437 images in batches of 32


def test_the_results_have_the_documented_shapes_and_dtypes(first_run):
    _, ns, _ = first_run
    runs = ns["results"]["runs"]
    assert [(r["model"], r["length"], r["seed"]) for r in runs] == [("rnn", 5, 0), ("lstm", 5, 0)]
    assert all(len(r["val_acc"]) == 5 and 0.0 <= r["final_val_acc"] <= 1.0 for r in runs)
    assert "| model |" in ns["jaxgan"].summary_markdown(ns["results"])
    assert ns["digits"].images.shape == (1437, 28, 28) and ns["digits"].images.dtype == np.uint8
    assert ns["digits"].labels.dtype == np.int32
    assert ns["trained"]["step"] == 880 and ns["trained"]["epoch"] == 20
    for images, n in ((ns["images"], 16), (ns["more"], 4)):
        assert images.shape == (n, 28, 28) and images.dtype == np.float32
        assert np.all(np.abs(np.asarray(images)) <= 1.0)
    assert ns["probs"].shape == (16, 10) and ns["probs"].dtype == np.float32
    np.testing.assert_allclose(ns["probs"].sum(-1), 1.0, rtol=1e-5)
    rows = ns["rows"]
    assert rows["latents"].shape == (2, 9, 100) and rows["latents"].dtype == np.float32
    assert rows["images"].shape == (2, 9, 28, 28) and rows["probs"].shape == (2, 9, 10)
    ends = rows["probs"][:, [0, -1]]
    assert np.all(ends.argmax(-1)[:, 0] != ends.argmax(-1)[:, 1])
    assert np.all(ends.max(-1) >= ns["threshold"]) and ns["threshold"] > 0.1


def test_run_again_in_the_same_folder_they_resume_and_agree(first_run):
    folder, before, _ = first_run
    after, _ = run_examples(folder)
    assert after["trained"]["train_s"] == 0.0 and after["trained"]["resumed_from"] == 880
    assert ([r["val_acc"] for r in after["results"]["runs"]]
            == [r["val_acc"] for r in before["results"]["runs"]])
    assert after["classifier"]["holdout_accuracy"] == pytest.approx(before["classifier"]["holdout_accuracy"])
    np.testing.assert_array_equal(after["rows"]["latents"], before["rows"]["latents"])
    np.testing.assert_allclose(after["images"], before["images"], atol=1e-6)

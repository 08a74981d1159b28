"""The TensorBoard writer: what it writes, TensorBoard's own reader reads back, without TensorFlow."""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from jaxgan.runtime.tensorboard import open_writer, to_uint8

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _read(logdir) -> event_accumulator.EventAccumulator:
    """Every event in ``logdir``, as TensorBoard loads it (0: keep all, not a sample)."""
    reader = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    return reader.Reload()


def _png(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


def test_scalars_and_images_read_back(tmp_path):
    grey = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8) * 5
    tanh = np.linspace(-1.0, 1.0, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    with open_writer(str(tmp_path)) as writer:
        for step in range(3):
            writer.scalars(step, {"d_loss": 0.5 + step, "val/accuracy": jnp.float32(0.25 * step),
                                  "steps": np.int64(10 * step)})
        writer.images(7, {"samples": grey, "rgb": tanh}, value_range=(-1.0, 1.0))
    files = [name for name in os.listdir(tmp_path) if name.startswith("events.out.tfevents.")]
    assert len(files) == 1, "one event file, directly in the run's folder"

    reader = _read(tmp_path)
    assert sorted(reader.Tags()["scalars"]) == ["d_loss", "steps", "val/accuracy"]
    assert [(e.step, e.value) for e in reader.Scalars("d_loss")] == [(0, 0.5), (1, 1.5), (2, 2.5)]
    assert [e.value for e in reader.Scalars("val/accuracy")] == [0.0, 0.25, 0.5]
    assert [e.value for e in reader.Scalars("steps")] == [0.0, 10.0, 20.0]

    [grey_event] = reader.Images("samples")
    assert (grey_event.step, grey_event.width, grey_event.height) == (7, 8, 6)
    decoded = _png(grey_event.encoded_image_string)
    decoded = decoded if decoded.ndim == 2 else decoded[..., 0]  # a grey image may come back as RGB
    np.testing.assert_array_equal(decoded, grey)
    [rgb_event] = reader.Images("rgb")
    decoded = _png(rgb_event.encoded_image_string)
    np.testing.assert_array_equal(decoded[..., :3], to_uint8(tanh, (-1.0, 1.0)))
    assert decoded[0, 0, 0] == 0 and decoded[-1, -1, -1] == 255


def test_flush_makes_events_visible_while_the_run_goes_on(tmp_path):
    writer = open_writer(str(tmp_path))
    try:
        writer.scalars(0, {"loss": 2.0})
        writer.flush()
        assert [e.value for e in _read(tmp_path).Scalars("loss")] == [2.0]
        writer.scalars(1, {"loss": 1.0})
        writer.flush()
        assert [e.value for e in _read(tmp_path).Scalars("loss")] == [2.0, 1.0]
    finally:
        writer.close()
    writer.close()  # a second close does nothing


def test_hparams_read_back(tmp_path):
    record = {"kind": "gan", "learning_rate": 2e-4, "gen_features": [128, 256], "d_loss": "mean",
              "shuffle": False, "batch_size": 64, "limit": None}
    with open_writer(str(tmp_path)) as writer:
        writer.hparams(record, metrics=("d_loss",))
        writer.scalars(0, {"d_loss": 0.7})
    content = _read(tmp_path).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["learning_rate"].number_value == pytest.approx(2e-4)
    assert hparams["batch_size"].number_value == 64
    assert hparams["gen_features"].string_value == "128 256"
    assert hparams["d_loss"].string_value == "mean"
    assert hparams["shuffle"].bool_value is False
    assert hparams["limit"].string_value == "None"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["d_loss"]


def test_a_disabled_writer_writes_nothing(tmp_path):
    logdir = tmp_path / "not-made"
    with open_writer(str(logdir), enabled=False) as writer:
        assert not writer.enabled and writer.logdir is None
        writer.hparams({"a": 1})
        writer.scalars(0, {"loss": 1.0})
        writer.images(0, {"grid": np.zeros((4, 4))})
        writer.flush()
    assert not logdir.exists()


def test_to_uint8_maps_the_range_and_refuses_what_is_no_image():
    np.testing.assert_array_equal(to_uint8(np.array([[-1.0, 0.0, 1.0, 3.0]]), (-1.0, 1.0)),
                                  [[0, 128, 255, 255]])
    np.testing.assert_array_equal(to_uint8(np.array([[0.0, 0.5, 1.0, np.nan]])), [[0, 128, 255, 0]])
    same = np.full((2, 2), 200, dtype=np.uint8)
    assert to_uint8(same) is same
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        to_uint8(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="value_range"):
        to_uint8(np.zeros((2, 2)), (1.0, 1.0))


def test_writes_and_reads_without_tensorflow(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
        from jaxgan.runtime.tensorboard import open_writer
        from tensorboard.backend.event_processing import event_accumulator
        with open_writer(sys.argv[1]) as writer:
            writer.scalars(3, {"loss": 0.5})
            writer.images(3, {"grid": [[0.0, 1.0]]})
            writer.hparams({"lr": 0.1})
        reader = event_accumulator.EventAccumulator(sys.argv[1]).Reload()
        assert [(e.step, e.value) for e in reader.Scalars("loss")] == [(3, 0.5)], reader.Tags()
        assert reader.Tags()["images"] == ["grid"], reader.Tags()
        """)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr

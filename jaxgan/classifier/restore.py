"""The digit classifier, restored: its variables from a checkpoint, and the real features scores compare to.

``restore_classifier(dir)`` reads a classifier checkpoint; ``load_classify_fn(dir)`` makes the
``images -> probs`` function the interpolation checks pairs with; ``held_out_reference`` makes
the ``jaxgan.scores.Reference`` of a checkpoint: the features of the real images it held out
(GAN training scores its generator against it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax

from jaxgan.classifier.steps import holdout_indices, init_state
from jaxgan.configs.base import from_record
from jaxgan.configs.classifier import KIND, ClassifierConfig
from jaxgan.data.images import load_images
from jaxgan.errors import UserError
from jaxgan.models.classifier import predict
from jaxgan.runtime import checkpoint, workdir
from jaxgan.scores import SCORE_SAMPLES, Reference, make_reference

WRITER_HINT = "python -m experiments.train_classifier writes those"


def restore_classifier(checkpoint_dir: str | os.PathLike, step: int | None = None) -> tuple[dict, dict]:
    """Restores ``({"params": ...}, record)`` of a classifier checkpoint (newest, or ``step``) from a
    classifier run folder (``train_classifier``'s workdir) or its checkpoint directory."""
    checkpoint_dir = workdir.checkpoints_of(os.fspath(checkpoint_dir))
    checkpoint.check_kind(checkpoint_dir, KIND, hint=WRITER_HINT)
    manager = checkpoint.open_manager(checkpoint_dir, create=False)
    try:
        _, recorded = checkpoint.read_config(manager, step)
        config = from_record(ClassifierConfig, recorded)
        abstract = jax.eval_shape(functools.partial(init_state, config=config), jax.random.PRNGKey(0))
        state, recorded = checkpoint.restore(manager, abstract, kind=KIND, step=step)
    finally:
        manager.close()
    return {"params": state.params}, recorded


def load_classify_fn(classifier_dir: str, step: int | None = None) -> Callable[[jax.Array], jax.Array]:
    """A ``classify_fn(images [B, 28, 28] in [-1, 1]) -> probs [B, 10]`` from a classifier checkpoint."""
    variables, _ = restore_classifier(classifier_dir, step)
    return lambda images: predict(variables, images)[0]


def held_out_reference(classifier_dir: str, *, data_dir: str | None = None,
                       max_samples: int = SCORE_SAMPLES) -> Reference:
    """The Reference of a classifier checkpoint: its held-out images (at most ``max_samples``).

    Restores the classifier, reloads the images it was trained on from the dataset and split its
    checkpoint records (``data_dir`` for tfds), and cuts the same held-out part it did. A missing
    directory, a checkpoint of another kind, or images that no longer match are one UserError.
    """
    variables, record = restore_classifier(classifier_dir)
    dataset, split, count = record.get("dataset"), record.get("split"), record.get("num_images")
    if not isinstance(dataset, str) or not isinstance(count, int):
        raise UserError(f"the classifier checkpoint in {classifier_dir} does not record the images it "
                        "was trained on, so its held-out part cannot be found")
    try:
        image_set = load_images(dataset, split=split, data_dir=data_dir)
    except UserError as err:
        raise UserError(f"cannot reload the images the classifier in {classifier_dir} was trained on "
                        f"(--dataset {dataset} --split {split}): {err}") from None
    if len(image_set.images) != count:
        raise UserError(f"the classifier in {classifier_dir} was trained on {count} images of "
                        f"{record.get('source') or dataset}, but --dataset {dataset} --split {split} "
                        f"now gives {len(image_set.images)}")
    _, held = holdout_indices(count, from_record(ClassifierConfig, record))
    held = held[:max_samples]
    source = f"{len(held)} held-out images of {image_set.source} (classifier {classifier_dir})"
    return make_reference(variables, image_set.images[held], source)

"""Sample-quality scores from the project's digit classifier: an MNIST Inception Score and a FID.

Both are pure JAX and run inside jit. The project scores ``SCORE_SAMPLES`` = 2,000 images
(the size of the classifier's held-out part of the MNIST test split) against 2,000 real
reference images; scores from different sample counts are not comparable (FID is biased
upwards for small samples), so keep the count fixed when comparing runs.

A ``Reference`` bundles a classifier with the features of real images kept out of its training,
computed once (``make_reference``; ``jaxgan.classifier.restore.held_out_reference`` makes one from
a classifier checkpoint).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import rel_entr

from jaxgan.errors import UserError
from jaxgan.models.classifier import predict

SCORE_SAMPLES = 2000
NUM_SPLITS = 10  # the Inception Score's splits (Salimans et al., 2016), when there are images enough
MIN_SPLIT = 100  # fewer splits for fewer images: no split of under 100 (29-image splits mean nothing)
MIN_SCORE_SAMPLES = 10  # the fewest images anything is scored on


def splits_for(n: int) -> int:
    """How many splits the Inception Score of ``n`` images uses: 10, or fewer so each holds >= 100."""
    return max(1, min(NUM_SPLITS, n // MIN_SPLIT))


@functools.partial(jax.jit, static_argnames=("num_splits",))
def inception_score(probs: jax.Array, num_splits: int | None = None) -> tuple[jax.Array, jax.Array]:
    """exp(mean KL(p(y|x) || p(y))) on each of ``num_splits`` equal parts of probs [N, C]: (mean, std).

    ``num_splits`` defaults to ``splits_for(N)``.
    Ranges from 1 (every image gets the same prediction, or every prediction is uniform) to C
    (confident predictions spread evenly over all classes). A tail of N mod num_splits rows is unused.
    """
    num_splits = splits_for(probs.shape[0]) if num_splits is None else num_splits
    per_split = probs.shape[0] // num_splits
    if per_split < 1:
        raise ValueError(f"inception_score needs at least {num_splits} rows, got {probs.shape[0]}")
    parts = probs[: per_split * num_splits].reshape(num_splits, per_split, probs.shape[-1])
    marginal = jnp.mean(parts, axis=1, keepdims=True)
    # rel_entr(p, q) = p log(p / q) with 0 log 0 = 0, so one-hot predictions need no epsilon.
    kl = jnp.sum(rel_entr(parts, marginal), axis=-1)
    scores = jnp.exp(jnp.mean(kl, axis=1))
    return jnp.mean(scores), jnp.std(scores)


@jax.jit
def frechet_distance(feat_a: jax.Array, feat_b: jax.Array) -> jax.Array:
    """Fréchet distance between Gaussians fitted to features [N, F] and [M, F] (a float scalar).

    d = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), with unbiased covariances.
    """
    xa = feat_a.astype(jnp.float32)
    xb = feat_b.astype(jnp.float32)
    mean_a, mean_b = jnp.mean(xa, axis=0), jnp.mean(xb, axis=0)
    xa, xb = xa - mean_a, xb - mean_b
    na, nb = xa.shape[0] - 1, xb.shape[0] - 1
    # Work on the centred data, never the covariances: with X = QR, S_a S_b has the eigenvalues of
    # (R_a R_b^T)(R_a R_b^T)^T / (na nb), so tr sqrt(S_a S_b) is the sum of singular values of
    # R_a R_b^T. This avoids squaring condition numbers (as forming S_a and taking sqrtm would),
    # is exact for singular covariances (dead ReLU features), and uses only jit-able QR and SVD.
    r_a = jnp.linalg.qr(xa, mode="r")
    r_b = jnp.linalg.qr(xb, mode="r")
    trace_sqrt = jnp.sum(jnp.linalg.svd(r_a @ r_b.T, compute_uv=False)) / jnp.sqrt(na * nb)
    distance = (jnp.sum((mean_a - mean_b) ** 2) + jnp.sum(xa**2) / na + jnp.sum(xb**2) / nb
                - 2.0 * trace_sqrt)
    # Rounding can leave identical sets a hair below zero; a distance is never negative.
    return jnp.maximum(distance, 0.0)


@functools.partial(jax.jit, static_argnames=("num_splits",))
def classifier_scores(classifier_variables: Mapping[str, Any], images: jax.Array,
                      reference_features: jax.Array, num_splits: int | None = None) -> dict[str, jax.Array]:
    """Inception Score (mean, std) and FID of images [N, 28, 28] against reference features [M, F].

    ``images`` are uint8 or float in [-1, 1] (generator output); ``reference_features`` come from
    ``predict(classifier_variables, real_images)[1]``. Use N = M = SCORE_SAMPLES.
    """
    probs, features = predict(classifier_variables, images)
    score, spread = inception_score(probs, num_splits)
    return {"inception_score": score, "inception_std": spread,
            "fid": frechet_distance(features, reference_features)}


@functools.partial(jax.jit, static_argnames=("num_splits",))
def classifier_scores_of_sets(classifier_variables: Mapping[str, Any], image_sets: jax.Array,
                              reference_features: jax.Array, num_splits: int | None = None
                              ) -> dict[str, jax.Array]:
    """``classifier_scores`` of K image sets [K, N, 28, 28] (or [K, N, 784]) at once: each score [K].

    One classifier pass over all K * N images and one (vmapped) copy of the score arithmetic, so
    the program compiles once however many sets (say, raw and EMA generators) are compared.
    """
    k, n = image_sets.shape[:2]
    probs, features = predict(classifier_variables, image_sets.reshape(k * n, *image_sets.shape[2:]))

    def one(set_probs, set_features):
        """The three scores of one set."""
        score, spread = inception_score(set_probs, num_splits)
        return {"inception_score": score, "inception_std": spread,
                "fid": frechet_distance(set_features, reference_features)}

    return jax.vmap(one)(probs.reshape(k, n, -1), features.reshape(k, n, -1))


class NonFiniteScore(UserWarning):
    """A score came out NaN or infinite; it is recorded as null, never as a number."""


def score_value(value: Any) -> float | None:
    """A score as written to JSON: its float32 value in shortest exact form, or None when not finite."""
    value = np.float32(value)
    return float(str(value)) if np.isfinite(value) else None


def score_text(value: float | None, spec: str = ".2f") -> str:
    """A score for people: formatted with ``spec``, or "not finite" for a None (or NaN) score."""
    return "not finite" if value is None or not np.isfinite(value) else format(value, spec)


class Reference(NamedTuple):
    """What generated images are scored against: a classifier and its held-out real features.

    ``variables`` are the classifier's; ``features`` [M, F] its penultimate features of M held-out
    real images (generators are scored on M samples too); ``source`` says where they came from.
    """

    variables: Mapping[str, Any]
    features: jax.Array
    source: str

    @property
    def num_samples(self) -> int:
        """M: how many real images the features describe, and how many samples are scored."""
        return int(self.features.shape[0])


def make_reference(classifier_variables: Mapping[str, Any], real_images: np.ndarray | jax.Array,
                   source: str = "") -> Reference:
    """A Reference from real images [M, 28, 28] (uint8 or float in [-1, 1]) kept out of its training."""
    if real_images.shape[0] < MIN_SCORE_SAMPLES:
        raise UserError(f"only {real_images.shape[0]} held-out images to score against; the scores need "
                        f"at least {MIN_SCORE_SAMPLES}")
    features = predict(classifier_variables, jnp.asarray(real_images))[1]
    return Reference(variables=classifier_variables, features=features, source=source)

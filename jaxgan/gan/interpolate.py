"""Latent interpolation: straight and spherical paths, and the search for pairs of different digits.

The study picked two latent points "of different classes" by eye. ``find_pairs`` does it by
measurement: it draws pairs until the classifier calls the two ends different classes, each
with confidence above a threshold. Without a classifier, ``random_pairs`` is the study's way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.configs.gan import INTERPOLATION_MODES as MODES
from jaxgan.errors import UserError
from jaxgan.models.gan import IMAGE_SHAPE, decode, latent_dim_of

# Below this angle (radians) slerp's sin(omega) denominator loses precision; the arc is a line there.
_PARALLEL_ANGLE = 1e-4
# Pairs drawn per classifier call in find_pairs: enough to amortise a jitted call.
_DRAW_BATCH = 64
# Pairs find_pairs draws before it gives up (so it can never keep more than this many).
MAX_TRIES = 10_000


def _with_ends(path: jax.Array, z0: jax.Array, z1: jax.Array) -> jax.Array:
    """Writes the exact end points into rows 0 and -1 (so no rounding can move them)."""
    return path.at[0].set(z0).at[-1].set(z1)


def _fractions(num_between: int) -> jax.Array:
    """t = 0, 1/(n+1), ..., 1 as a column [n + 2, 1]."""
    return jnp.linspace(0.0, 1.0, num_between + 2)[:, None]


@functools.partial(jax.jit, static_argnames=("num_between",))
def linear(z0: jax.Array, z1: jax.Array, num_between: int = 7) -> jax.Array:
    """Straight line from z0 [D] to z1 [D]: [num_between + 2, D], rows 0 and -1 exactly z0 and z1."""
    t = _fractions(num_between)
    return _with_ends((1.0 - t) * z0 + t * z1, z0, z1)


@functools.partial(jax.jit, static_argnames=("num_between",))
def slerp(z0: jax.Array, z1: jax.Array, num_between: int = 7) -> jax.Array:
    """Great-circle path from z0 [D] to z1 [D] (White, 2016): [num_between + 2, D], exact ends.

    Applied to the raw vectors as GAN papers do, so the norm is not held fixed. Near-parallel
    (angle ~ 0) and near-opposite (angle ~ pi, where the arc is not unique) pairs, and a zero
    vector, fall back to the straight line.
    """
    t = _fractions(num_between)
    norms = jnp.linalg.norm(z0) * jnp.linalg.norm(z1)
    cosine = jnp.clip(jnp.dot(z0, z1) / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
    omega = jnp.arccos(cosine)
    degenerate = (norms == 0) | (omega < _PARALLEL_ANGLE) | (omega > jnp.pi - _PARALLEL_ANGLE)
    safe_sin = jnp.where(degenerate, 1.0, jnp.sin(omega))
    arc = (jnp.sin((1.0 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / safe_sin
    path = jnp.where(degenerate, (1.0 - t) * z0 + t * z1, arc)
    return _with_ends(path, z0, z1)


def interpolate_pairs(pairs: jax.Array, num_between: int = 7, mode: str = "linear") -> jax.Array:
    """Paths for every pair: latents [P, 2, D] -> [P, num_between + 2, D]."""
    if mode not in MODES:
        raise UserError(f"unknown interpolation mode {mode!r}; choose one of {', '.join(MODES)}")
    fn = linear if mode == "linear" else slerp
    return jax.vmap(lambda pair: fn(pair[0], pair[1], num_between))(jnp.asarray(pairs))


def random_pairs(latent_key: jax.Array, num_pairs: int, latent_dim: int) -> np.ndarray:
    """The study's way: pairs of standard normal latents [P, 2, D], classes unchecked."""
    return np.asarray(jax.random.normal(latent_key, (num_pairs, 2, latent_dim), jnp.float32))


def find_pairs(key: jax.Array, generate_fn: Callable[[jax.Array], jax.Array],
               classify_fn: Callable[[jax.Array], jax.Array] | None, num_pairs: int, latent_dim: int,
               threshold: float = 0.9, max_tries: int = MAX_TRIES) -> tuple[np.ndarray, np.ndarray | None]:
    """Latent pairs whose two images the classifier puts in different classes, both confidently.

    ``generate_fn(latents [B, D]) -> images [B, 28, 28]`` and ``classify_fn(images) -> probs [B, 10]``.
    Draws standard normal pairs from ``key``, in order, and keeps the first ``num_pairs`` whose
    ends have different argmax classes, each with probability >= ``threshold``. Returns
    (latents [P, 2, D], probs [P, 2, 10]). With ``classify_fn=None`` returns
    (``random_pairs(key, ...)``, None). Raises UserError after ``max_tries`` pairs without enough.
    """
    if classify_fn is None:
        return random_pairs(key, num_pairs, latent_dim), None
    kept_latents: list[np.ndarray] = []
    kept_probs: list[np.ndarray] = []
    tried = 0
    draw = 0
    while len(kept_latents) < num_pairs and tried < max_tries:
        count = min(_DRAW_BATCH, max_tries - tried)
        # One key per draw, folded from the caller's key: the same key finds the same pairs.
        latents = jax.random.normal(jax.random.fold_in(key, draw), (count, 2, latent_dim), jnp.float32)
        probs = np.asarray(classify_fn(generate_fn(latents.reshape(2 * count, latent_dim))))
        probs = probs.reshape(count, 2, -1)
        classes, confidence = probs.argmax(-1), probs.max(-1)
        good = (classes[:, 0] != classes[:, 1]) & np.all(confidence >= threshold, axis=1)
        latents = np.asarray(latents)
        for i in np.flatnonzero(good)[: num_pairs - len(kept_latents)]:
            kept_latents.append(latents[i])
            kept_probs.append(probs[i])
        tried += count
        draw += 1
    if len(kept_latents) < num_pairs:
        raise UserError(f"found only {len(kept_latents)} of {num_pairs} pairs of different, confident "
                        f"classes in {max_tries} tries; lower the confidence threshold ({threshold}), "
                        f"draw with the generator's other weights (raw or EMA), or train it longer")
    return np.stack(kept_latents), np.stack(kept_probs)


def interpolation_rows(gen_variables: dict, pair_key: jax.Array, *, num_pairs: int = 4, num_between: int = 7,
                       mode: str = "linear", classify_fn: Callable[[jax.Array], jax.Array] | None = None,
                       threshold: float = 0.9, max_tries: int = MAX_TRIES) -> dict:
    """Pairs (classifier-checked when ``classify_fn`` is given) and their decoded paths.

    Returns {"latents": [P, S, D], "images": [P, S, 28, 28] in [-1, 1], "probs": [P, S, 10] or
    None, "mode", "num_between", "threshold", "checked"} with S = num_between + 2.
    """
    if mode not in MODES:
        raise UserError(f"unknown interpolation mode {mode!r}; choose one of {', '.join(MODES)}")
    latent_dim = latent_dim_of(gen_variables["params"])
    ends, _ = find_pairs(pair_key, lambda z: decode(gen_variables, z), classify_fn, num_pairs, latent_dim,
                         threshold, max_tries)
    latents = np.asarray(interpolate_pairs(ends, num_between, mode))
    flat = latents.reshape(-1, latent_dim)
    images = np.asarray(decode(gen_variables, flat)).reshape(*latents.shape[:2], *IMAGE_SHAPE)
    probs = None
    if classify_fn is not None:
        probs = np.asarray(classify_fn(images.reshape(-1, *IMAGE_SHAPE))).reshape(*latents.shape[:2], -1)
    return {"latents": latents, "images": images, "probs": probs, "mode": mode, "num_between": num_between,
            "threshold": threshold, "checked": classify_fn is not None}


def rows_json(rows: dict, **extra) -> dict:
    """The JSON-ready part of ``interpolation_rows`` output (latents and predictions, no pixels)."""
    record = {**extra, "mode": rows["mode"], "num_between": rows["num_between"],
              "classifier_checked": rows["checked"],
              "threshold": rows["threshold"] if rows["checked"] else None,
              "latents": np.asarray(rows["latents"], np.float32).tolist()}
    if rows["probs"] is not None:
        record["classes"] = rows["probs"].argmax(-1).tolist()
        record["confidence"] = rows["probs"].max(-1).round(6).tolist()
    return record

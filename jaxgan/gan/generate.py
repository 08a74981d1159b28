"""Part 2, inference: a trained generator restored from its checkpoint, and samples from it.

``restore_generator(checkpoint_dir)`` reads the newest (or a given) checkpoint's generator,
raw or EMA, into an abstract target; ``sample(variables, key, n)`` draws eval-mode images
(``jaxgan.models.gan.decode`` turns any latents into images).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.configs.base import from_record
from jaxgan.configs.gan import KIND, GANConfig
from jaxgan.errors import UserError
from jaxgan.gan.steps import CHECKPOINTED, WEIGHTS, checkpoint_tree, init_state
from jaxgan.models.gan import decode, latent_dim_of
from jaxgan.runtime import checkpoint, workdir
from jaxgan.runtime.precision import require_32bit


def restore_generator(checkpoint_dir: str, step: int | None = None, weights: str | None = None
                      ) -> tuple[dict, dict]:
    """A generator's variables ``{"params", "batch_stats"}`` and its run's config plus ``checkpoint_step``
    and ``weights``, from a GAN run folder (``train_gan``'s workdir) or its checkpoint directory.

    ``weights`` is "ema" (the EMA of the generator's weights, with its own BatchNorm statistics),
    "raw" (the generator as trained), or None: the EMA when the checkpoint keeps one, else raw.
    Reads the newest (or the given) checkpoint into an abstract target from ``jax.eval_shape``,
    built from the config saved beside it. A checkpoint written before the EMA existed gives
    its raw generator; asking it (or one trained with ``ema_decay`` 0) for "ema" is a UserError,
    and so are weights that are not all finite.
    """
    require_32bit()  # 64-bit noise would draw other images
    checkpoint_dir = workdir.checkpoints_of(checkpoint_dir)  # a run folder names its checkpoints
    if weights is not None and weights not in WEIGHTS:
        raise UserError(f"unknown generator weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    checkpoint.check_kind(checkpoint_dir, KIND, label="GAN",
                          hint="python -m experiments.train_gan writes those")
    manager = checkpoint.open_manager(checkpoint_dir, create=False)
    try:
        step, record = checkpoint.read_config(manager, step)
        predates_ema = "ema_decay" not in record
        has_ema = not predates_ema and record["ema_decay"] > 0
        weights = weights or ("ema" if has_ema else "raw")
        if weights == "ema" and not has_ema:
            why = "it predates the EMA" if predates_ema else "it was trained with ema_decay 0"
            raise UserError(f"the checkpoint at step {step} in {checkpoint_dir} holds no EMA of the "
                            f"generator's weights ({why}); use the raw weights")
        config = from_record(GANConfig, record)
        abstract = checkpoint_tree(jax.eval_shape(functools.partial(init_state, config)))
        if predates_ema:  # the same tree without the EMA fields (Orbax matches a dict by field names)
            abstract = {name: abstract[name] for name in CHECKPOINTED if not name.startswith("ema_")}
        state, record = checkpoint.restore(manager, abstract, kind=KIND, step=step)
    finally:
        manager.close()
    if predates_ema or weights == "raw":
        gen_variables = {"params": state["gen"].params, "batch_stats": state["gen"].batch_stats}
    else:
        gen_variables = {"params": state["ema_params"], "batch_stats": state["ema_batch_stats"]}
    if not all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(gen_variables)):
        raise UserError(f"the {weights} weights of the generator at step {step} in {checkpoint_dir} are not "
                        f"all finite (NaN or infinity), so they cannot draw images")
    return gen_variables, {**record, "checkpoint_step": step, "weights": weights}


def check_finite_images(images: np.ndarray, what: str) -> np.ndarray:
    """Returns images [n, ...] if every value is finite; otherwise UserError naming ``what`` drew them."""
    bad = int(np.count_nonzero(~np.isfinite(np.asarray(images)).reshape(len(images), -1).all(axis=1)))
    if bad:
        raise UserError(f"{bad} of the {len(images)} images that {what} drew are not finite (NaN or "
                        f"infinity), so nothing was written")
    return images


def sample(gen_variables: dict, key: jax.Array, n: int) -> jax.Array:
    """``n`` eval-mode samples float32 [n, 28, 28] in [-1, 1] from standard normal noise of ``key``."""
    noise = jax.random.normal(key, (n, latent_dim_of(gen_variables["params"])))
    return decode(gen_variables, noise)

"""The precision jaxgan computes in: JAX's 32-bit defaults, refused in one sentence when they are changed.

Every number of the study is float32 and every counter and random integer int32. With
``JAX_ENABLE_X64`` JAX's defaults become 64-bit: a random draw without an explicit dtype gives
other numbers (other palindromes, other noise), and a scan whose carry mixes both stops with a
dtype error after files were written. So a run refuses it before any work rather than give
another result silently.
"""

from __future__ import annotations

from jaxgan.errors import UserError


def require_32bit() -> None:
    """Raises UserError when JAX's 64-bit mode is on (``JAX_ENABLE_X64`` or ``jax_enable_x64``)."""
    import jax

    if jax.config.jax_enable_x64:
        raise UserError("JAX's 64-bit mode is on (JAX_ENABLE_X64 or jax_enable_x64), but jaxgan computes in "
                        "float32 and int32 as the study did, and 64-bit defaults would draw other random "
                        "numbers and give other results; unset JAX_ENABLE_X64 and run again")

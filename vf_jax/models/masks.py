"""Length masking: inputs may be zero-padded along time to a static bucket.

Every block that mixes neighbouring frames takes ``valid`` (``(batch,)`` int,
or ``None`` for "all frames") and zeroes the frames at and past it right
before mixing them, which is exactly what zero padding at the true end does;
frames past ``valid`` in the output are to be ignored. Layout is
channels-last throughout: spectrogram images are ``(batch, frames, bins,
channels)``, sequences ``(batch, frames, features)``.
"""

from __future__ import annotations

import jax.numpy as jnp


def mask_frames(x, valid):
    """Zero frames ``t >= valid`` of ``x`` ``(batch, frames, ...)``; ``valid`` may be None."""
    if valid is None:
        return x
    t = jnp.arange(x.shape[1])
    keep = t[None, :] < jnp.reshape(valid, (-1, 1))
    return x * keep.reshape(keep.shape + (1,) * (x.ndim - 2)).astype(x.dtype)

"""The 2x2 folded layout: the ResUNet's first level on a TPU.

The first level of the ResUNet (32 channels at full resolution) fills a
quarter of a TPU's 128-wide matrix unit on each side, and its 3x3 convolutions
take the largest share of the VF-UNet training step there. Folding each 2x2
block of time-frequency samples into the channels,
``(B, T, F, C) -> (B, T/2, F/2, 4C)``, turns each of them into a 2x2
convolution over 128 channels: 1.8x the multiply-adds, but the unit is full.
The TPU compiler then estimates the first encoder block's training pass at
about a third of the plain layout's, and needs less memory and compile time
for it (``benchmarks/accelerators.py`` measures whole programs). Other
backends keep the plain layout (:mod:`vf_jax.backends`).

Layout: ``folded[b, i, j, 4 c + 2 p + q] = x[b, 2 i + p - offset, 2 j + q - offset, c]``
(channel-major, so concatenating folded tensors along channels equals folding
the concatenation), zero where the index falls outside ``x``. A 3x3 "same"
convolution maps offset 0 to offset 1 and back (:func:`conv3x3`): with
``y[t] = sum_d x[t + d - 1] w[d]``, input offset ``a`` and output offset
``1 - a``, output phase ``p`` reads input block ``j`` (of two consecutive
ones) at phase ``q`` with tap ``d = 2 j + q - p``. Positions outside ``x``
hold garbage after a convolution; :func:`real_mask` zeroes them before the
next one and keeps them out of BatchNorm statistics.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def blocks(n: int, offset: int) -> int:
    """Folded blocks along an axis of ``n`` samples at ``offset``."""
    return (n + offset + 1) // 2


def fold(x, offset: int = 0):
    """``(B, T, F, C) -> (B, blocks(T), blocks(F), 4C)``."""
    b, t, f, c = x.shape
    nt, nf = blocks(t, offset), blocks(f, offset)
    x = jnp.pad(x, ((0, 0), (offset, 2 * nt - t - offset), (offset, 2 * nf - f - offset),
                    (0, 0)))
    x = x.reshape(b, nt, 2, nf, 2, c).transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(b, nt, nf, 4 * c)


def unfold(xf, frames: int, bins: int, offset: int = 0):
    """The inverse of :func:`fold`: ``(B, nt, nf, 4C) -> (B, frames, bins, C)``."""
    b, nt, nf, c4 = xf.shape
    x = xf.reshape(b, nt, nf, c4 // 4, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    x = x.reshape(b, 2 * nt, 2 * nf, c4 // 4)
    return x[:, offset:offset + frames, offset:offset + bins]


def channel_sum(v):
    """``(..., 4C) -> (..., C)``: the sum of each channel's four phases."""
    return v.reshape(v.shape[:-1] + (v.shape[-1] // 4, 4)).sum(-1)


def real_mask(offset: int, frames: int, bins: int, shape, valid=None):
    """Bool ``(1 or B, nt, nf, 4C)`` for a folded array of ``shape``
    ``(B, nt, nf, 4C)`` at ``offset``: the positions that hold samples of the
    ``(frames, bins)`` image, and frames below ``valid`` (``(B,)``) when given.
    Built from iotas, so that XLA fuses it into its users."""
    dims = (1,) + tuple(shape[1:])
    i, j, k = (lax.broadcasted_iota(jnp.int32, dims, axis) for axis in (1, 2, 3))
    t = 2 * i + (k // 2) % 2 - offset
    f = 2 * j + k % 2 - offset
    inside = (t >= 0) & (t < frames) & (f >= 0) & (f < bins)
    if valid is not None:
        inside = inside & (t < jnp.reshape(valid, (-1, 1, 1, 1)))
    return inside


def apply_mask(xf, mask):
    """Zero the positions of ``xf`` outside ``mask`` (:func:`real_mask`)."""
    return jnp.where(mask, xf, jnp.zeros((), xf.dtype))


def _tap_selection():
    """``S[j, q, p, d] = 1`` where ``d = 2 j + q - p`` is a tap of a 3-kernel."""
    s = np.zeros((2, 2, 2, 3), np.float32)
    for j in range(2):
        for q in range(2):
            for p in range(2):
                if 0 <= 2 * j + q - p < 3:
                    s[j, q, p, 2 * j + q - p] = 1.0
    return s


def fold_kernel3x3(kernel):
    """``(3, 3, C, O) -> (2, 2, 4C, 4O)`` for the folded layout."""
    c, o = kernel.shape[2:]
    s = jnp.asarray(_tap_selection(), kernel.dtype)
    k = jnp.einsum("aqpd,bren,dncm->abcqrmpe", s, s, kernel)
    return k.reshape(2, 2, 4 * c, 4 * o)


def conv3x3(xf, kernel, offset: int, frames: int, bins: int):
    """A 3x3 "same" convolution of the folded ``xf`` at ``offset`` (0 or 1)
    with ``kernel`` ``(3, 3, C, O)``; the result is at offset ``1 - offset``.
    Positions of ``xf`` outside the image must be zero."""
    out = 1 - offset
    nt, nf = blocks(frames, out), blocks(bins, out)
    start = 1 if offset == 0 else 0      # output block i reads input blocks i - start, +1
    pad = ((0, 0), (start, nt + 1 - xf.shape[1] - start),
           (start, nf + 1 - xf.shape[2] - start), (0, 0))
    return lax.conv_general_dilated(jnp.pad(xf, pad), fold_kernel3x3(kernel), (1, 1),
                                    "VALID", dimension_numbers=_DIMS)


def conv1x1(xf, kernel):
    """A 1x1 convolution ``kernel`` ``(1, 1, C, O)`` of the folded ``xf``
    (any offset): ``(B, nt, nf, 4C) -> (B, nt, nf, 4O)``."""
    k = jnp.kron(kernel[0, 0], jnp.eye(4, dtype=kernel.dtype))
    return jnp.einsum("bijc,co->bijo", xf, k)


def pool2x2(xf, frames: int, bins: int):
    """PyTorch's ``avg_pool2d(x, 2)`` (odd edges dropped) of the offset-0
    folded ``xf``: ``(B, T // 2, F // 2, C)``, unfolded."""
    return (channel_sum(xf) / 4)[:, :frames // 2, :bins // 2]

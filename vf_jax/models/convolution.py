"""Convolutions in the forms each platform compiles well
(:mod:`vf_jax.backends`): 2-D (plain or in the folded layout), transposed
2-D, 1-D (XLA's convolution, or shifted views side by side as one matrix
product on TPU), strided and grouped (the discriminators), and PyTorch's
``ConvTranspose1d`` as phases. Channels-last: ``(batch, frames, features)``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vf_jax import backends
from vf_jax.models import folded as folded_layout


class ConvParameters(nn.Module):
    """The variables of ``flax.linen.Conv`` (same names, shapes and
    initialisers), for convolutions computed in more than one form."""
    shape: tuple
    use_bias: bool

    @nn.compact
    def __call__(self):
        kernel = self.param("kernel", nn.initializers.xavier_uniform(), self.shape)
        bias = (self.param("bias", nn.initializers.zeros, (self.shape[-1],))
                if self.use_bias else None)
        return kernel, bias


class Conv2d(nn.Module):
    """2-D convolution with symmetric zero padding; kernel ``(kh, kw, in, out)``.

    ``(B, T, F, in) -> (B, T, F, out)``; or, with ``folded=(frames, bins)``, of
    the folded layout at ``offset`` (:mod:`vf_jax.models.folded`; the result is at
    offset ``1 - offset`` for a 3x3 kernel, at ``offset`` for 1x1).
    """
    features: int
    kernel: int = 3
    use_bias: bool = False

    @nn.compact
    def __call__(self, x, folded: tuple[int, int] | None = None, offset: int = 0):
        channels = x.shape[-1] // 4 if folded else x.shape[-1]
        kernel, bias = ConvParameters((self.kernel, self.kernel, channels, self.features),
                                       self.use_bias, name="conv")()
        dtype = jnp.result_type(x, kernel)     # flax.linen.Conv's promotion
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        if folded is None:
            y = conv2d(x, kernel)
        elif self.kernel == 1:
            y = folded_layout.conv1x1(x, kernel)
        elif self.kernel == 3:
            y = folded_layout.conv3x3(x, kernel, offset, *folded)
        else:
            raise ValueError(f"no folded form of a {self.kernel}x{self.kernel} convolution")
        if bias is None:
            return y
        bias = bias.astype(dtype)
        return y + (jnp.repeat(bias, 4) if folded else bias)


def conv2d(x, kernel):
    """Stride-1 "same" 2-D convolution ``(B, T, F, C) -> (B, T, F, O)``,
    ``kernel`` ``(kh, kw, C, O)`` (odd sizes), in the form the backend
    compiles well (:mod:`vf_jax.backends`): XLA's convolution on CPU and GPU
    and in training; at inference on a TPU (with the loops,
    :func:`vf_jax.backends.loops`, which training steps turn off) the
    ``kh kw`` shifted views side by side on the channel axis times the kernel
    as a ``(kh kw C, O)`` matrix (:func:`conv2d_as_product`): the ResUNet of a
    folder's rows program compiled for a v5e chip in 53 s instead of 72 s,
    while under a gradient the products compiled slower
    (``docs/accelerators.md``)."""
    if (backends.family() == "tpu" and backends.loops()
            and kernel.shape[0] * kernel.shape[1] > 1):
        return conv2d_as_product(x, kernel)
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    return lax.conv_general_dilated(x, kernel, (1, 1), ((ph, ph), (pw, pw)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.checkpoint
def conv2d_as_product(x, kernel):
    """:func:`conv2d`'s TPU form. Checkpointed: a gradient stores ``x``, not
    the ``kh kw``-times larger side-by-side views."""
    kh, kw, c, o = kernel.shape
    b, t, f, _ = x.shape
    x = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    views = [x[:, i:i + t, j:j + f] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(views, axis=-1) @ kernel.reshape(kh * kw * c, o)


def conv_transpose(x, kernel, stride: Sequence[int], padding: Sequence[int],
                   output_padding: Sequence[int] | None = None):
    """PyTorch's ``ConvTranspose{1,2}d`` on channels-last input.

    ``kernel`` is ``(*spatial, in, out)``, in PyTorch's element order (its
    ``(in, out, *spatial)`` weight transposed, not flipped). Output size per axis:
    ``(L - 1) * stride - 2 * padding + k + output_padding``.

    Computed as zeros stuffed between the input samples (``lax.pad`` with
    interior padding), then a plain stride-1 convolution with the flipped
    kernel. Equal to ``conv_general_dilated(lhs_dilation=stride)``, but its
    gradients are plain convolutions too: on CPU the lhs-dilated form's
    backward pass ran many times slower (``benchmarks/README.md``, "Measured choices").
    """
    nd = len(stride)
    output_padding = output_padding or (0,) * nd
    k = kernel.shape[:nd]
    flipped = jnp.flip(kernel, axis=tuple(range(nd)))
    config = [(0, 0, 0)] + [(k[i] - 1 - padding[i], k[i] - 1 - padding[i] + output_padding[i],
                             stride[i] - 1) for i in range(nd)] + [(0, 0, 0)]
    stuffed = lax.pad(x, jnp.zeros((), x.dtype), config)
    spatial = "HW"[:nd] if nd == 2 else "H"
    dn = lax.conv_dimension_numbers(stuffed.shape, flipped.shape,
                                    (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
    return lax.conv_general_dilated(stuffed, flipped, window_strides=(1,) * nd,
                                    padding="VALID", dimension_numbers=dn)


def conv1d(x, kernel, padding: tuple[int, int] = (0, 0), dilation: int = 1):
    """Stride-1 1-D convolution ``(B, T, C) -> (B, T', O)``, ``kernel`` ``(k, C,
    O)``, zero ``padding`` ``(left, right)``, in the form the backend
    compiles well (:mod:`vf_jax.backends`):

    - CPU, GPU: XLA's convolution;
    - TPU: the ``k`` shifted (dilated) views of ``x`` side by side on the
      channel axis, times the kernel as a ``(k C, O)`` matrix: one matrix
      product. As a convolution, the vocoder's dilated layers compile
      slowly for a TPU, and its cost model does not price them; as a
      product they compile in a second or two and move less memory
      (``benchmarks/tpu_ceilings.py``; figures in ``benchmarks/README.md``).
    """
    k, c, o = kernel.shape
    if backends.family() == "tpu":
        return conv1d_as_product(x, kernel, tuple(padding), dilation)
    return lax.conv_general_dilated(x, kernel, window_strides=(1,), padding=[tuple(padding)],
                                    rhs_dilation=(dilation,),
                                    dimension_numbers=("NHC", "HIO", "NHC"))


@functools.partial(jax.checkpoint, static_argnums=(2, 3))
def conv1d_as_product(x, kernel, padding: tuple[int, int], dilation: int):
    """:func:`conv1d`'s TPU form. Checkpointed: a gradient stores ``x``, not
    the ``k``-times larger side-by-side views, and builds them again (a copy)
    in the backward pass."""
    k, c, o = kernel.shape
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*padding, 0), (0, 0, 0)))
    out = x.shape[1] - dilation * (k - 1)
    views = [x[:, i * dilation:i * dilation + out] for i in range(k)]
    columns = views[0] if k == 1 else jnp.concatenate(views, axis=-1)
    return columns @ kernel.reshape(k * c, o)


@functools.partial(jax.checkpoint, static_argnums=(3,))
def conv1d_dilation_as_data(x, kernel, dilation, reach: int):
    """Stride-1 "same" 1-D convolution whose dilation is an array, not a
    constant: ``(B, T, C) -> (B, T, O)``, ``kernel`` ``(k, C, O)``, k odd,
    ``dilation`` an int32 scalar at most ``reach``. What lets a loop
    (``lax.scan``) run the vocoder's residual layers, whose dilations differ,
    as one compiled body.

    ``x`` is zero-padded by ``reach (k - 1) / 2`` on each side once; the taps
    are ``dynamic_slice``\ s of it at ``(j - (k - 1) / 2) * dilation``, side by
    side on the channel axis, times the kernel as a ``(k C, O)`` matrix. The
    padding costs a copy, not arithmetic: every product is ``T`` rows long.
    Checkpointed as :func:`conv1d_as_product`.
    """
    k, c, o = kernel.shape
    half = (k - 1) // 2
    pad = reach * half
    frames = x.shape[1]
    x = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    views = [lax.dynamic_slice_in_dim(x, pad + (j - half) * dilation, frames, axis=1)
             for j in range(k)]
    columns = views[0] if k == 1 else jnp.concatenate(views, axis=-1)
    return columns @ kernel.reshape(k * c, o)


def strided_conv(x, kernel, strides: Sequence[int], padding: Sequence[tuple[int, int]],
                 groups: int = 1):
    """``lax.conv_general_dilated(x, kernel, strides, padding,
    feature_group_count=groups)`` on channels-last ``x`` ``(B, *spatial, C)``,
    ``kernel`` ``(*k, C / groups, out)``, computed polyphase.

    Each strided axis is cut into ``stride`` phases, which join the channels
    (``x[s u + r]`` -> ``X[u, (r, c)]``), and the kernel likewise
    (``w[s a + r]`` -> ``W[a, (r, c)]``): the convolution is then unstrided,
    ``y[t] = sum_a W[a] X[t + a]``. Without groups that is a plain stride-1
    convolution; with groups, a batched matrix product over the groups of the
    ``ceil(k / s)`` shifted copies of ``X``. The result is the same; the
    gradients are what changes: on CPU, XLA's strided and grouped convolutions
    take tens of times their forward time to differentiate, these about
    twice (MelGAN's grouped kernel-41 stride-4 layer; ``benchmarks/README.md``, "Measured choices").
    """
    nd = len(strides)
    k, cg, out = kernel.shape[:nd], kernel.shape[nd], kernel.shape[nd + 1]
    b = x.shape[0]
    g, og = groups, out // groups
    taps = [-(-k[i] // strides[i]) for i in range(nd)]
    size = [(x.shape[1 + i] + padding[i][0] + padding[i][1] - k[i]) // strides[i] + 1
            for i in range(nd)]
    span = [(size[i] + taps[i] - 1) * strides[i] for i in range(nd)]
    x = jnp.pad(x, [(0, 0)] + [(padding[i][0], max(0, span[i] - x.shape[1 + i] - padding[i][0]))
                               for i in range(nd)] + [(0, 0)])
    x = x[(slice(None),) + tuple(slice(0, n) for n in span)]
    # (B, u0, r0, u1, r1, ..., G, cg) -> (B, u0, u1, ..., G, r0, r1, ..., cg)
    x = x.reshape((b,) + sum(((span[i] // strides[i], strides[i]) for i in range(nd)), ())
                  + (g, cg))
    order = ((0,) + tuple(1 + 2 * i for i in range(nd)) + (1 + 2 * nd,)
             + tuple(2 + 2 * i for i in range(nd)) + (2 + 2 * nd,))
    phases = int(np.prod(strides))
    x = x.transpose(order).reshape((b,) + tuple(span[i] // strides[i] for i in range(nd))
                                   + (g, phases * cg))
    # (a0, r0, a1, r1, ..., cg, G, og) -> (a0, a1, ..., G, r0, r1, ..., cg, og)
    w = jnp.pad(kernel, [(0, taps[i] * strides[i] - k[i]) for i in range(nd)] + [(0, 0)] * 2)
    w = w.reshape(sum(((taps[i], strides[i]) for i in range(nd)), ()) + (cg, g, og))
    order = (tuple(2 * i for i in range(nd)) + (2 * nd + 1,)
             + tuple(2 * i + 1 for i in range(nd)) + (2 * nd, 2 * nd + 2))
    w = w.transpose(order).reshape(tuple(taps) + (g, phases * cg, og)).astype(x.dtype)
    if g == 1 and nd == 1:
        return conv1d(x[..., 0, :], w[..., 0, :, :])
    if g == 1:
        spatial = "HWD"[:nd]
        return lax.conv_general_dilated(
            x[..., 0, :], w[..., 0, :, :], window_strides=(1,) * nd, padding="VALID",
            dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
    product = (grouped_product_recopied if backends.family() == "tpu"
               else grouped_product)
    y = product(x, w.reshape((-1, g, phases * cg, og)), tuple(taps), tuple(size))
    return y.reshape((b,) + tuple(size) + (out,))


def grouped_product(x, w, taps: tuple, size: tuple):
    """``(B, *span, G, I)``, ``(prod(taps), G, I, O)`` -> ``(B, *size, G, O)``:
    the grouped product over the shifted copies of ``x``."""
    nd = len(taps)
    shifted = jnp.stack([x[(slice(None),) + tuple(slice(a[i], a[i] + size[i]) for i in range(nd))]
                         for a in np.ndindex(*taps)], axis=1 + nd)
    return jnp.einsum("...agi,agio->...go", shifted, w)


# On a TPU a gradient stores ``x``, not its ``prod(taps)`` copies (the published
# waveform discriminators' gradients stored 11 copies of each strided layer's
# input, 0.37 GB each at batch 24 x 0.5 s), and copies them again. CPU and GPU
# have the memory and keep the copies.
grouped_product_recopied = jax.checkpoint(grouped_product, static_argnums=(2, 3))


def conv_transpose1d_polyphase(x, kernel, stride: int, padding: int):
    """PyTorch's ``ConvTranspose1d`` without zero-stuffing, ``(B, T, in) -> (B, T *
    stride, out)``: exactly ``stride * T`` outputs (the output padding that makes
    the length ``stride * T`` is implied).

    Output ``o = t * stride + r`` receives ``x[i] @ kernel[k]`` for every ``i, k``
    with ``i * stride + k - padding = o``. Each phase ``r`` is a short conv over
    ``x``; all phases run as one conv with ``stride * out`` output channels and
    are interleaved by a reshape, so no multiply touches an inserted zero.
    ``kernel``: ``(k, in, out)`` in PyTorch's element order.
    """
    k_size, c_in, c_out = kernel.shape
    taps = {}   # input offset (i - t) -> list of (phase, kernel index)
    for r in range(stride):
        q, rr = divmod(r + padding, stride)
        m = 0
        while m * stride + rr < k_size:
            taps.setdefault(q - m, []).append((r, m * stride + rr))
            m += 1
    lo, hi = min(taps), max(taps)
    blocks = []
    for offset in range(lo, hi + 1):
        cols = [jnp.zeros((c_in, c_out), kernel.dtype)] * stride
        for r, k in taps.get(offset, []):
            cols[r] = cols[r] + kernel[k]
        blocks.append(jnp.concatenate(cols, axis=-1))
    combined = jnp.stack(blocks)                         # (taps, in, stride * out)
    y = conv1d(x, combined.astype(x.dtype), (-lo, hi))
    return y.reshape(x.shape[0], x.shape[1] * stride, c_out)

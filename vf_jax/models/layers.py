"""Building blocks shared by every network: BatchNorm variants, the ResUNet
blocks, a bidirectional multi-layer GRU with PyTorch's gate semantics, and
length masking.

Layout is channels-last throughout: spectrogram images are
``(batch, frames, bins, channels)``, sequences ``(batch, frames, features)``.

Length masking: inputs may be zero-padded along time to a static bucket. Every
block that mixes neighbouring frames takes ``valid`` (``(batch,)`` int, or
``None`` for "all frames") and zeroes the frames at and past it right before
mixing them, which is exactly what zero padding at the true end does; frames
past ``valid`` in the output are to be ignored.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vf_jax import backends
from vf_jax.models import folded as folded_layout


def mask_frames(x, valid):
    """Zero frames ``t >= valid`` of ``x`` ``(batch, frames, ...)``; ``valid`` may be None."""
    if valid is None:
        return x
    t = jnp.arange(x.shape[1])
    keep = t[None, :] < jnp.reshape(valid, (-1, 1))
    return x * keep.reshape(keep.shape + (1,) * (x.ndim - 2)).astype(x.dtype)


_BATCH_AXES: list = [None]


@contextlib.contextmanager
def batch_axis(name):
    """BatchNorm layers built inside use statistics over the mapped axis
    ``name`` too (``jax.pmap``): the global batch, as synchronised BatchNorm.
    Under ``jax.jit`` with a sharded batch this is automatic."""
    _BATCH_AXES.append(name)
    try:
        yield
    finally:
        _BATCH_AXES.pop()


def torch_momentum(momentum: float) -> float:
    """PyTorch's BatchNorm momentum (weight of the new batch) as Flax's."""
    return 1.0 - momentum


def batch_norm(train_bn: bool, momentum: float = 0.1, name: str | None = None):
    """BatchNorm over the last axis with PyTorch's defaults (eps 1e-5).

    ``train_bn``: normalise with batch statistics (and update the running ones
    when the ``batch_stats`` collection is mutable) instead of the stored ones.
    Two-pass variance, as PyTorch.
    """
    return nn.BatchNorm(use_running_average=not train_bn,
                        momentum=torch_momentum(momentum), epsilon=1e-5,
                        use_fast_variance=False, axis_name=_BATCH_AXES[-1], name=name)


class FoldedBatchNorm(nn.Module):
    """:func:`batch_norm` of the folded layout (:mod:`vf_jax.models.folded`), with the
    variables of ``flax.linen.BatchNorm``: per channel over its four phases,
    statistics over the positions in ``mask`` only (``(1 or B, nt, nf, 4C)``).
    ``(B, nt, nf, 4C) -> (B, nt, nf, 4C)``. Its own masked sums rather than
    ``BatchNorm(mask=...)`` on a phase-split view: that view costs the TPU
    layout copies, and on XLA:CPU its statistics were not reproducible from
    run to run.
    """
    train_bn: bool
    momentum: float = 0.1     # PyTorch's convention

    @nn.compact
    def __call__(self, x, mask):
        channels = x.shape[-1] // 4
        mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((channels,), jnp.float32))
        var = self.variable("batch_stats", "var", lambda: jnp.ones((channels,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (channels,))
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        # Statistics in at least float32 (flax's force_float32_reductions).
        xs = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        if self.train_bn:
            keep = jnp.broadcast_to(mask, x.shape)
            count = folded_layout.channel_sum(jnp.sum(keep, axis=(0, 1, 2), dtype=xs.dtype))
            axis_name = None if self.is_initializing() else _BATCH_AXES[-1]

            def average(v):      # where, not a product: the garbage may be large
                total = jnp.sum(jnp.where(keep, v, jnp.zeros((), v.dtype)), axis=(0, 1, 2))
                m = folded_layout.channel_sum(total) / count
                return m if axis_name is None else lax.pmean(m, axis_name)
            mu = average(xs)
            sigma2 = average(jnp.square(xs - jnp.repeat(mu, 4)))   # two-pass, as PyTorch
            if not self.is_initializing():
                keep_old = torch_momentum(self.momentum)
                mean.value = keep_old * mean.value + (1 - keep_old) * mu
                var.value = keep_old * var.value + (1 - keep_old) * sigma2
        else:
            mu, sigma2 = mean.value, var.value
        y = ((xs - jnp.repeat(mu, 4)) * jnp.repeat(lax.rsqrt(sigma2 + 1e-5) * scale, 4)
             + jnp.repeat(bias, 4))
        return y.astype(jnp.result_type(x, scale, bias))


class ScalarBatchNorm(nn.Module):
    """``BatchNorm2d(1)`` on a ``(B, 1, T, F)`` tensor: one mean and variance over
    every element. Input ``(batch, frames, features)``."""
    momentum: float = 0.1

    @nn.compact
    def __call__(self, x, train_bn: bool):
        y = batch_norm(train_bn, self.momentum, name="bn")(x[..., None])
        return y[..., 0]


class _ConvParameters(nn.Module):
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
        kernel, bias = _ConvParameters((self.kernel, self.kernel, channels, self.features),
                                       self.use_bias, name="conv")()
        dtype = jnp.result_type(x, kernel)     # flax.linen.Conv's promotion
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        if folded is None:
            p = self.kernel // 2
            y = lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
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
        return _conv1d_as_product(x, kernel, tuple(padding), dilation)
    return lax.conv_general_dilated(x, kernel, window_strides=(1,), padding=[tuple(padding)],
                                    rhs_dilation=(dilation,),
                                    dimension_numbers=("NHC", "HIO", "NHC"))


@functools.partial(jax.checkpoint, static_argnums=(2, 3))
def _conv1d_as_product(x, kernel, padding: tuple[int, int], dilation: int):
    """:func:`conv1d`'s TPU form. Checkpointed: a gradient stores ``x``, not
    the ``k``-times larger side-by-side views, and builds them again (a copy)
    in the backward pass."""
    k, c, o = kernel.shape
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*padding, 0), (0, 0, 0)))
    out = x.shape[1] - dilation * (k - 1)
    views = [x[:, i * dilation:i * dilation + out] for i in range(k)]
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
    product = (_grouped_product_recopied if backends.family() == "tpu"
               else _grouped_product)
    y = product(x, w.reshape((-1, g, phases * cg, og)), tuple(taps), tuple(size))
    return y.reshape((b,) + tuple(size) + (out,))


def _grouped_product(x, w, taps: tuple, size: tuple):
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
_grouped_product_recopied = jax.checkpoint(_grouped_product, static_argnums=(2, 3))


class ConvBlockRes(nn.Module):
    """BN -> LeakyReLU(0.01) -> conv3x3 -> BN -> LeakyReLU(0.01) -> conv3x3, plus a
    shortcut (1x1 conv with bias when the channel count changes).

    ``(B, T, F, in) -> (B, T, F, features)``; with ``folded=(T, F)``, the same
    in the folded layout at offset 0 (:mod:`vf_jax.models.folded`):
    ``(B, T/2, F/2, 4 in) -> (B, T/2, F/2, 4 features)``, equal where unfolded.
    """
    features: int
    momentum: float = 0.01   # the released model's ConvBlockRes (PyTorch convention)

    @nn.compact
    def __call__(self, x, train_bn: bool, valid=None, folded: tuple[int, int] | None = None):
        if folded is not None:
            return self._folded(x, train_bn, valid, folded)
        h = nn.leaky_relu(batch_norm(train_bn, self.momentum, "bn1")(x), 0.01)
        h = Conv2d(self.features, name="conv1")(mask_frames(h, valid))
        h = nn.leaky_relu(batch_norm(train_bn, self.momentum, "bn2")(h), 0.01)
        h = Conv2d(self.features, name="conv2")(mask_frames(h, valid))
        if x.shape[-1] != self.features:
            x = Conv2d(self.features, kernel=1, use_bias=True, name="shortcut")(x)
        return x + h

    def _folded(self, x, train_bn, valid, folded):
        frames, bins = folded
        # Offset 0 in, 1 between the convolutions, 0 out; the positions outside
        # the image are left out of the statistics and zeroed before each conv.
        mask = lambda offset, shape, v=None: folded_layout.real_mask(offset, frames, bins,
                                                                     shape, v)
        h = nn.leaky_relu(FoldedBatchNorm(train_bn, self.momentum, name="bn1")(
            x, mask(0, x.shape)), 0.01)
        h = folded_layout.apply_mask(h, mask(0, h.shape, valid))
        h = Conv2d(self.features, name="conv1")(h, folded, offset=0)
        h = nn.leaky_relu(FoldedBatchNorm(train_bn, self.momentum, name="bn2")(
            h, mask(1, h.shape)), 0.01)
        h = folded_layout.apply_mask(h, mask(1, h.shape, valid))
        h = Conv2d(self.features, name="conv2")(h, folded, offset=1)
        if x.shape[-1] != 4 * self.features:
            x = Conv2d(self.features, kernel=1, use_bias=True, name="shortcut")(x, folded)
        return x + h


def average_pool_2x2(x):
    """2x2 average pooling, stride 2, odd edges dropped (PyTorch's
    ``avg_pool2d(x, 2)``): ``(B, T, F, C) -> (B, T // 2, F // 2, C)``.

    A reshape and a mean rather than ``reduce_window``, whose gradient is far
    slower on CPU; same numbers.
    """
    b, t, f, c = x.shape
    x = x[:, :t // 2 * 2, :f // 2 * 2]
    return jnp.mean(x.reshape(b, t // 2, 2, f // 2, 2, c), axis=(2, 4))


class EncoderBlockRes(nn.Module):
    """Four ConvBlockRes, then 2x2 average pooling (floor).

    Returns ``(pooled, skip)``: ``(B, T/2, F//2, C)`` and ``(B, T, F, C)``;
    with ``fold``, the blocks run in the folded layout (:mod:`vf_jax.models.folded`)
    and ``skip`` is folded.
    """
    features: int
    momentum: float = 0.01

    @nn.compact
    def __call__(self, x, train_bn: bool, valid=None, fold: bool = False):
        folded = x.shape[1:3] if fold else None
        if fold:
            x = folded_layout.fold(x)
        for i in range(4):
            x = ConvBlockRes(self.features, self.momentum, name=f"block{i + 1}")(
                x, train_bn, valid, folded)
        if fold:
            return folded_layout.pool2x2(x, *folded), x
        return average_pool_2x2(x), x


class DecoderBlockRes(nn.Module):
    """BN -> ReLU -> 3x3 transposed conv, stride 2, no padding (``2L+1``) -> drop
    the last frame -> concatenate the skip -> four ConvBlockRes.

    ``(B, T, F, in), (B, 2T, 2F+1, out) -> (B, 2T, 2F+1, out)``. ``valid`` is the
    input's valid frame count. With ``folded=(2T, 2F+1)`` the skip and the
    result are in the folded layout (:mod:`vf_jax.models.folded`).
    """
    features: int
    momentum: float = 0.01       # ConvBlockRes
    bn_momentum: float = 0.1     # the block's own BatchNorm (PyTorch default)

    @nn.compact
    def __call__(self, x, skip, train_bn: bool, valid=None,
                 folded: tuple[int, int] | None = None):
        h = nn.relu(batch_norm(train_bn, self.bn_momentum, "bn1")(x))
        kernel = self.param("up_kernel", nn.initializers.xavier_uniform(),
                            (3, 3, x.shape[-1], self.features))
        h = conv_transpose(mask_frames(h, valid), kernel.astype(h.dtype),
                           (2, 2), (0, 0))[:, :-1]
        if folded is not None:
            h = folded_layout.fold(h)
        h = jnp.concatenate([h, skip], axis=-1)
        valid = None if valid is None else 2 * valid
        for i in range(4):
            h = ConvBlockRes(self.features, self.momentum, name=f"block{i + 1}")(
                h, train_bn, valid, folded)
        return h


class GRULayer(nn.Module):
    """One direction of one layer of ``torch.nn.GRU``.

    Gates in PyTorch's order (r, z, n) with ``b_hn`` inside the reset product:
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.
    ``(B, T, in) -> (B, T, hidden)``. Reverse layers restart from zero at the
    last valid frame, so padding past ``valid`` does not change their output.
    """
    hidden: int
    reverse: bool = False

    @nn.compact
    def __call__(self, x, valid=None):
        h3 = 3 * self.hidden
        kernel_ih = self.param("kernel_ih", nn.initializers.xavier_uniform(),
                               (x.shape[-1], h3))
        kernel_hh = self.param("kernel_hh", _stacked_orthogonal(3), (self.hidden, h3))
        bias_ih = self.param("bias_ih", nn.initializers.zeros, (h3,))
        bias_hh = self.param("bias_hh", nn.initializers.zeros, (h3,))
        # The input projection of every frame at once; only h @ W_hh is sequential.
        xproj = x @ kernel_ih.astype(x.dtype) + bias_ih.astype(x.dtype)
        batch, frames = x.shape[0], x.shape[1]
        if valid is None:
            keep = jnp.ones((frames, batch, 1), x.dtype)
        else:
            keep = (jnp.arange(frames)[:, None] < jnp.reshape(valid, (1, -1)))
            keep = keep[..., None].astype(x.dtype)
        w_hh = kernel_hh.astype(x.dtype)
        b_hh = bias_hh.astype(x.dtype)
        hsz = self.hidden

        def step(h, inputs):
            xp, k = inputs
            gh = h @ w_hh + b_hh
            r = jax.nn.sigmoid(xp[:, :hsz] + gh[:, :hsz])
            z = jax.nn.sigmoid(xp[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
            n = jnp.tanh(xp[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
            h = ((1.0 - z) * n + z * h) * k
            return h, h

        h0 = jnp.zeros((batch, hsz), x.dtype)
        _, out = lax.scan(step, h0, (jnp.swapaxes(xproj, 0, 1), keep),
                          reverse=self.reverse)
        return jnp.swapaxes(out, 0, 1)


def _stacked_orthogonal(n_gates: int):
    """Orthogonal init per gate block (as the original's BN_GRU)."""
    ortho = nn.initializers.orthogonal()

    def init(key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, n_gates)
        h = shape[1] // n_gates
        return jnp.concatenate([ortho(k, (shape[0], h), dtype) for k in keys], axis=1)
    return init


class BiGRU(nn.Module):
    """Bidirectional multi-layer GRU (``torch.nn.GRU(bidirectional=True,
    batch_first=True)``). ``(B, T, in) -> (B, T, 2 * hidden)``."""
    hidden: int
    layers: int = 2

    @nn.compact
    def __call__(self, x, valid=None):
        for layer in range(self.layers):
            fwd = GRULayer(self.hidden, name=f"l{layer}")(x, valid)
            bwd = GRULayer(self.hidden, reverse=True, name=f"l{layer}_reverse")(x, valid)
            x = jnp.concatenate([fwd, bwd], axis=-1)
        return x


class BNGRU(nn.Module):
    """The original's ``BN_GRU``: scalar BatchNorm, then a bidirectional GRU."""
    hidden: int
    layers: int = 2

    @nn.compact
    def __call__(self, x, train_bn: bool, valid=None):
        x = ScalarBatchNorm(name="bn")(x, train_bn)
        return BiGRU(self.hidden, self.layers, name="gru")(x, valid)


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

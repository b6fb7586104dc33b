"""BatchNorm with PyTorch's conventions (momentum, eps, two-pass variance),
synchronised over a mapped axis under ``jax.pmap``; its folded-layout form
and the scalar BatchNorm of the original's ``BN_GRU``."""

from __future__ import annotations

import contextlib

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from vf_jax.models import folded as folded_layout

BATCH_AXES: list = [None]


@contextlib.contextmanager
def batch_axis(name):
    """BatchNorm layers built inside use statistics over the mapped axis
    ``name`` too (``jax.pmap``): the global batch, as synchronised BatchNorm.
    Under ``jax.jit`` with a sharded batch this is automatic."""
    BATCH_AXES.append(name)
    try:
        yield
    finally:
        BATCH_AXES.pop()


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
                        use_fast_variance=False, axis_name=BATCH_AXES[-1], name=name)


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
            axis_name = None if self.is_initializing() else BATCH_AXES[-1]

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

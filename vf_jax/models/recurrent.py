"""Recurrent layers with PyTorch's semantics: one direction of ``torch.nn.GRU``
(gates r, z, n; ``b_hn`` inside the reset product), the bidirectional
multi-layer GRU, and the original's ``BN_GRU``. ``(batch, frames, features)``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vf_jax.models.normalization import ScalarBatchNorm


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
        kernel_hh = self.param("kernel_hh", stacked_orthogonal(3), (self.hidden, h3))
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


def stacked_orthogonal(n_gates: int):
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

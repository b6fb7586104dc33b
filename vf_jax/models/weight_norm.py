"""Weight normalisation (Salimans & Kingma 2016) as parameters, and folding.

A weight-normed layer holds ``v`` (the kernel's shape) and ``g`` (the kernel's
shape with 1 on every normalised axis) and uses ``w = g * v / ||v||``, the norm
over the axes where ``g`` has size 1 — PyTorch's ``weight_norm(dim=0)`` keeps
its ``weight_g`` the same way. Training updates ``g`` and ``v``; for inference
:func:`fold` replaces each pair by the ``kernel`` it makes, which is exactly
the parameter tree of the same module built with ``weight_norm=False``.
:func:`unfold` goes back (``v = kernel``, ``g = ||kernel||``), so folded
weights (e.g. the converted published vocoder) can be fine-tuned.

:class:`Conv` is the one convolution of the vocoder and the discriminators.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vf_jax.models.convolution import conv1d, strided_conv

# MelGAN's initialisation (Kumar et al. 2019): conv weights N(0, 0.02).
KERNEL_INIT = nn.initializers.normal(0.02)


def norm(v, axes: Sequence[int]):
    """``sqrt(sum(v², axes))`` keeping the reduced axes (computed in float32)."""
    v = v.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(v * v, axis=tuple(axes), keepdims=True))


def weight(module: nn.Module, shape: Sequence[int], norm_axes: Sequence[int],
           weight_norm: bool, init=KERNEL_INIT):
    """The kernel of ``module``: its ``kernel`` parameter, or ``g * v / ||v||``
    from its ``g`` and ``v`` parameters (``g`` starts at ``||v||``)."""
    if not weight_norm:
        return module.param("kernel", init, tuple(shape))
    v = module.param("v", init, tuple(shape))
    g_shape = tuple(1 if i in norm_axes else s for i, s in enumerate(shape))
    g = module.param("g", lambda key, s: norm(v, norm_axes), g_shape)
    return (g * v / norm(v, norm_axes)).astype(v.dtype)


def _is_pair(node) -> bool:
    return isinstance(node, dict) and "g" in node and "v" in node


def fold(params):
    """Every ``{g, v, ...}`` -> ``{kernel, ...}`` (``kernel = g v / ||v||``)."""
    if _is_pair(params):
        g, v = params["g"], params["v"]
        axes = [i for i, s in enumerate(g.shape) if s == 1]
        rest = {k: x for k, x in params.items() if k not in ("g", "v")}
        return {"kernel": (g * v / norm(v, axes)).astype(v.dtype), **rest}
    if isinstance(params, dict):
        return {k: fold(x) for k, x in params.items()}
    return params


def unfold(params, template):
    """Folded ``params`` -> the weight-normed tree of ``template`` (a
    ``weight_norm=True`` module's params, e.g. from ``jax.eval_shape``):
    ``v = kernel``, ``g = ||kernel||`` over the axes where ``template``'s ``g``
    has size 1. The layer computes the same function."""
    if _is_pair(template):
        kernel = params["kernel"]
        axes = [i for i, s in enumerate(template["g"].shape) if s == 1]
        rest = {k: x for k, x in params.items() if k != "kernel"}
        return {"g": norm(kernel, axes).astype(kernel.dtype), "v": kernel, **rest}
    if isinstance(template, dict):
        missing = sorted(set(template) - set(params))
        if missing:
            raise KeyError(f"parameters lack {missing[0]!r}")
        return {k: unfold(params[k], t) for k, t in template.items()}
    return params


def is_weight_normed(params) -> bool:
    """Whether ``params`` holds any ``{g, v}`` pair."""
    if _is_pair(params):
        return True
    return isinstance(params, dict) and any(is_weight_normed(x) for x in params.values())


class Conv(nn.Module):
    """N-d convolution ``(B, *spatial, in) -> (B, *spatial', features)``,
    kernel ``(*kernel_size, in / groups, features)``, plain or weight-normed
    (norm per output channel, as PyTorch's ``weight_norm`` on a Conv)."""
    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: Sequence[tuple[int, int]] | None = None     # default: "same" for odd kernels
    dilation: Sequence[int] | None = None
    groups: int = 1
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        k = tuple(self.kernel_size)
        n = len(k)
        dilation = tuple(self.dilation or (1,) * n)
        padding = self.padding
        if padding is None:
            padding = [(d * (s - 1) // 2, d * (s - 1) // 2) for s, d in zip(k, dilation)]
        shape = k + (x.shape[-1] // self.groups, self.features)
        kernel = weight(self, shape, tuple(range(n + 1)), self.weight_norm)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        strides = tuple(self.strides or (1,) * n)
        padding = [tuple(p) for p in padding]
        if (any(s > 1 for s in strides) or self.groups > 1) and all(d == 1 for d in dilation):
            # Same result; gradients an order of magnitude faster on CPU.
            y = strided_conv(x, kernel.astype(x.dtype), strides, padding, self.groups)
        elif n == 1 and strides == (1,) and self.groups == 1:
            y = conv1d(x, kernel.astype(x.dtype), padding[0], dilation[0])
        else:
            spatial = "HWD"[:n]
            y = lax.conv_general_dilated(
                x, kernel.astype(x.dtype), window_strides=strides, padding=padding,
                rhs_dilation=dilation,
                dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
                feature_group_count=self.groups)
        return y + bias.astype(y.dtype)


def param_count(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))

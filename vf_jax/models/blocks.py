"""The ResUNet's blocks: ConvBlockRes, the encoder block (four of them and
2x2 average pooling) and the decoder block (transposed convolution, skip,
four ConvBlockRes), in the plain or the folded layout
(:mod:`vf_jax.models.folded`). ``(batch, frames, bins, channels)``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vf_jax import backends
from vf_jax.models import folded as folded_layout
from vf_jax.models.convolution import Conv2d, conv_transpose
from vf_jax.models.masks import mask_frames
from vf_jax.models.normalization import FoldedBatchNorm, batch_norm


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


def conv_blocks(parent: nn.Module, features: int, momentum: float, x, train_bn: bool, valid,
                folded, count: int = 4):
    """``count`` ConvBlockRes named ``block1 ..`` of ``parent``, in turn.

    With :func:`vf_jax.backends.loops` (a TPU) at inference, the blocks after
    the first (whose shapes are all the same; the first may change the
    channels) run as one loop body over their variables, stacked at call
    time: the compiler sees one block's convolutions instead of three. Not
    while the variables are being created, nor with batch statistics (which
    update the stored ones), nor in the folded layout (looped, the first
    level compiled slower, measured): those stay unrolled.
    The variables are the same either way.
    """
    blocks = [ConvBlockRes(features, momentum, name=f"block{i + 1}") for i in range(count)]
    x = blocks[0](x, train_bn, valid, folded)
    rest = [f"block{i + 1}" for i in range(1, count)]
    if (len(rest) < 2 or not backends.loops() or train_bn or folded is not None
            or parent.is_initializing()):
        for block in blocks[1:]:
            x = block(x, train_bn, valid, folded)
        return x
    variables = [{kind: parent.variables[kind][name] for kind in ("params", "batch_stats")}
                 for name in rest]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *variables)
    block = ConvBlockRes(features, momentum)

    def body(x, block_variables):
        return block.apply(block_variables, x, False, valid), None
    return lax.scan(body, x, stacked)[0]


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
        x = conv_blocks(self, self.features, self.momentum, x, train_bn, valid, folded)
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
        return conv_blocks(self, self.features, self.momentum, h, train_bn, valid, folded)

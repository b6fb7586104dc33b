"""The ResUNet of VoiceFixer's analysis stage (VF-UNet and the released model).

From ``docs/voicefixer.md``, "ResUNet": time padded to a multiple of 64,
the top mel bin dropped (127 bins), six encoder blocks 32-64-128-256-384-384
with 2x2 average pooling, a centre ConvBlockRes, six decoder blocks back to 32,
a ConvBlockRes head and a 1x1 conv to one channel; the output gets a zero top bin
and is cropped to the input's frames.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vf_jax import backends
from vf_jax.models import folded as folded_layout
from vf_jax.models.blocks import ConvBlockRes, DecoderBlockRes, EncoderBlockRes
from vf_jax.models.convolution import Conv2d

ENCODER_CHANNELS = (32, 64, 128, 256, 384, 384)
DOWNSAMPLE = 2 ** len(ENCODER_CHANNELS)   # 64


def padded_frames(frames):
    """The original pads time up to a multiple of 64 (works on ints and arrays)."""
    return (frames + DOWNSAMPLE - 1) // DOWNSAMPLE * DOWNSAMPLE


class ResUNet(nn.Module):
    """``(B, T, mels, C) -> (B, T, mels)`` residual in the log10 domain.

    ``valid``: ``(B,)`` true frame counts when ``T`` is a padded bucket (then
    ``T`` must be a multiple of 64); frames past ``valid`` must be zero on input.
    """
    momentum: float = 0.01
    channels: tuple = ENCODER_CHANNELS   # the encoder's; the decoder mirrors them

    @nn.compact
    def __call__(self, x, train_bn: bool = False, valid=None):
        frames, mels = x.shape[1], x.shape[2]
        total = padded_frames(frames)
        x = jnp.pad(x, ((0, 0), (0, total - frames), (0, 0), (0, 0)))[:, :, :mels - 1]
        # Zero padding of the original ends at the multiple of 64 above the true
        # length; with a larger bucket the frames past it are masked.
        level_valid = None if valid is None else padded_frames(valid)

        # On a TPU the first level (32 channels, full resolution) runs folded
        # (vf_jax.models.folded): its skip, the last decoder block, the head and the
        # output convolution stay in that layout. Deeper levels gain nothing.
        fold = backends.family() == "tpu"
        first = x.shape[1:3]
        skips = []
        for i, ch in enumerate(self.channels):
            lv = None if level_valid is None else level_valid // (2 ** i)
            x, skip = EncoderBlockRes(ch, self.momentum, name=f"encoder{i + 1}")(
                x, train_bn, lv, fold=fold and i == 0)
            skips.append(skip)
        depth = len(self.channels)
        lv = None if level_valid is None else level_valid // (2 ** depth)
        x = ConvBlockRes(self.channels[-1], self.momentum, name="centre")(
            x, train_bn, lv)
        decoder_channels = self.channels[::-1]
        for i, (ch, skip) in enumerate(zip(decoder_channels, reversed(skips))):
            lv = None if level_valid is None else level_valid // (2 ** (depth - i))
            last = i == depth - 1
            x = DecoderBlockRes(ch, self.momentum, name=f"decoder{i + 1}")(
                x, skip, train_bn, lv, folded=first if fold and last else None)
        folded = first if fold else None
        x = ConvBlockRes(self.channels[0], self.momentum, name="head")(
            x, train_bn, level_valid, folded)
        x = Conv2d(1, kernel=1, use_bias=True, name="out")(x, folded)
        if fold:
            x = folded_layout.unfold(x, *first)
        x = jnp.pad(x[..., 0], ((0, 0), (0, 0), (0, 1)))
        return x[:, :frames]

"""The TFGAN vocoder generator (44.1 kHz) and its input normalisation.

From ``docs/voicefixer.md``, "Vocoder": a linear mel ``(B, T, 128)`` is divided by per-band weights,
turned into clipped, normalised decibels and extended by ``T % 2 + 4`` frames of
-4; a 5-layer conv condnet, then conv k7, four upsampling stages (x7, x7, x3, x3
= 441 = hop) each followed by a ResStack, and a final conv k7 with tanh.
Convolutions are plain for inference (the converter folds the published weight
norms) or weight-normed for training (:mod:`vf_jax.models.weight_norm`).

Layout: ``(batch, time, channels)``. With ``valid`` (true frame counts of the
normalised features) the input may be padded to a static bucket; every conv
input is masked past the true end and reflection padding reflects at it, so the
valid samples equal the unpadded computation.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vf_jax import backends
from vf_jax.models.convolution import conv1d, conv1d_dilation_as_data, conv_transpose1d_polyphase
from vf_jax.models.masks import mask_frames
from vf_jax.models.weight_norm import Conv, fold, weight

N_MELS = 128
HOP = 441
UPSAMPLE = (7, 7, 3, 3)
COND_CHANNELS = 512
CHANNELS = 1024
RESSTACK_DEPTH = 8
MIN_DB = -115.0
GENERATOR_SIZES = ("channels", "cond_channels", "resstack_depth")
MAX_ABS = 4.0


def band_weights(n_mels: int = N_MELS) -> np.ndarray:
    """``w_k = 18.8927416350036 exp(0.0269863588184314 k)``, k = 1..n_mels: half
    the Hz bandwidth of each HTK triangle (turns plain triangles into
    Slaney-area-normalised mel)."""
    k = np.arange(1, n_mels + 1, dtype=np.float32)
    return (np.float32(18.8927416350036) * np.exp(np.float32(0.0269863588184314) * k)
            ).astype(np.float32)


def tail_frames(frames):
    """Frames of -4 the original appends: ``T % 2 + 4``."""
    return frames % 2 + 4


def normalise_mel(mel, valid=None):
    """Linear mel ``(B, T, 128)`` -> vocoder features ``(B, T + T % 2 + 4, 128)``.

    ``S = 20 log10(max(1e-5, |M| / w)) - 20``; ``clip(8 (S + 115) / 115 - 4, -4, 4)``;
    then the -4 tail. With ``valid`` (true frames, ``(B,)``), ``T`` is a bucket:
    the output keeps ``T`` frames (the bucket must leave room for the tail) and
    frames ``valid .. valid + tail`` hold -4; returns ``(features, new_valid)``.
    """
    w = jnp.asarray(band_weights(mel.shape[-1]), mel.dtype)
    db = 20.0 * jnp.log10(jnp.maximum(1e-5, jnp.abs(mel) / w)) - 20.0
    feat = jnp.clip(2 * MAX_ABS * (db - MIN_DB) / (-MIN_DB) - MAX_ABS, -MAX_ABS, MAX_ABS)
    if valid is None:
        frames = mel.shape[1]
        tail = jnp.full((mel.shape[0], tail_frames(frames), mel.shape[2]), -MAX_ABS,
                        mel.dtype)
        return jnp.concatenate([feat, tail], axis=1), None
    t = jnp.arange(mel.shape[1])[None, :, None]
    v = jnp.reshape(valid, (-1, 1, 1))
    feat = jnp.where(t < v, feat, -MAX_ABS)
    return feat, valid + tail_frames(valid)


def trim_center(out, length: int, frames: int):
    """The original's alignment: of the vocoder's ``441 * (T + tail)`` samples
    (``T = frames``), drop ``diff // 2`` at the start and keep ``length``
    (numpy or jnp, ``(..., samples)``)."""
    produced = HOP * (frames + tail_frames(frames))
    start = (produced - length) // 2
    return out[..., start:start + length]


def reflect_pad(x, pad: int, valid=None):
    """``ReflectionPad1d(pad)`` on ``(B, T, C)``, reflecting at ``valid`` when
    given (``(B,)``, each more than ``pad``: the vocoder's counts hold at
    least the 4-frame tail); positions past ``valid + pad`` hold zeros.

    No gather: position ``valid + k`` takes the value ``2 k + 2`` positions
    back, so the end's reflection is ``pad`` static shifts and selects (a
    gather here cost the TPU compiler 6 s of the vocoder's 26 and a quarter
    of its compute estimate)."""
    if valid is None:
        return jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="reflect")
    padded = jnp.concatenate([jnp.flip(x[:, 1:pad + 1], axis=1), x,
                              jnp.zeros_like(x[:, :pad])], axis=1)
    t = jnp.arange(-pad, x.shape[1] + pad)[None, :, None]
    end = jnp.reshape(valid, (-1, 1, 1))
    out = jnp.where(t < end, padded, 0.0)
    for k in range(pad):
        back = jnp.pad(padded, ((0, 0), (2 * k + 2, 0), (0, 0)))[:, :padded.shape[1]]
        out = jnp.where(t == end + k, back, out)
    return out


class Conv1d(nn.Module):
    """1-D conv with symmetric zero padding (``padding=dilation * (k - 1) / 2``)
    or none; kernel ``(k, in, out)``, plain or weight-normed."""
    features: int
    kernel: int
    dilation: int = 1
    same: bool = True
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        p = self.dilation * (self.kernel - 1) // 2 if self.same else 0
        return Conv(self.features, (self.kernel,), padding=((p, p),),
                    dilation=(self.dilation,), weight_norm=self.weight_norm, name="conv")(x)


class Upsample(nn.Module):
    """``x + sin(x)``, then ConvTranspose1d(kernel 2f, stride f, padding
    f//2 + f%2, output_padding f%2): exactly ``f * T`` samples. Weight norm
    (when on) is per input channel, as PyTorch's on a ConvTranspose."""
    features: int
    factor: int
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x, valid=None):
        f = self.factor
        kernel = weight(self, (2 * f, x.shape[-1], self.features), (0, 2), self.weight_norm)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = mask_frames(x + jnp.sin(x), valid)
        y = conv_transpose1d_polyphase(x, kernel.astype(x.dtype), f, f // 2 + f % 2)
        return y + bias.astype(x.dtype)


def residual_layer(x, dilated, dilated_bias, pointwise, pointwise_bias, dilation,
                   valid, reach: int):
    """One residual layer with its dilation as data, ``(B, T, C) -> (B, T, C)``:
    the body of :class:`ResStack`'s loop (kernels ``(3, C, C)``, biases ``(C,)``)."""
    h = mask_frames(nn.leaky_relu(x, 0.01), valid)
    h = conv1d_dilation_as_data(h, dilated, dilation, reach) + dilated_bias
    h = mask_frames(nn.leaky_relu(h, 0.01), valid)
    return x + conv1d(h, pointwise, (1, 1)) + pointwise_bias


class ResStack(nn.Module):
    """Residual layers ``x += conv1(lrelu(conv_dil(lrelu(x))))``, dilation 3^i,
    LeakyReLU(0.01), kernel 3.

    Unrolled, or (:func:`vf_jax.backends.loops`, on a TPU) one loop body over
    the layers' weights stacked at call time, the dilation as data
    (:func:`residual_layer`): the compiler then sees two convolutions instead
    of ``2 * depth``. The variables are the same either way (``layer{i}_dilated``,
    ``layer{i}_pointwise``; created unrolled, read back for the loop with weight
    norm folded by :func:`vf_jax.models.weight_norm.fold`), so weights folders
    and checkpoints do not change.
    """
    depth: int = RESSTACK_DEPTH
    weight_norm: bool = False
    remat: bool = False
    looped: bool | None = None     # None: vf_jax.backends.loops()

    @nn.compact
    def __call__(self, x, valid=None):
        looped = backends.loops() if self.looped is None else self.looped
        if looped and self.depth > 1 and not self.is_initializing():
            return self._looped(x, valid)
        ch = x.shape[-1]
        wn = self.weight_norm
        for i in range(self.depth):
            def layer(module, x, valid, i=i):
                h = mask_frames(nn.leaky_relu(x, 0.01), valid)
                h = Conv1d(ch, 3, dilation=dilation_of(i), weight_norm=wn,
                           name=f"layer{i}_dilated")(h)
                h = mask_frames(nn.leaky_relu(h, 0.01), valid)
                return x + Conv1d(ch, 3, weight_norm=wn, name=f"layer{i}_pointwise")(h)
            # With remat a gradient keeps each layer's input only and recomputes
            # the rest; the variables keep their names either way.
            x = (nn.remat(layer) if self.remat else layer)(self, x, valid)
        return x

    def _looped(self, x, valid):
        params = fold(self.variables["params"])
        stack = lambda kind, leaf: jnp.stack([params[f"layer{i}_{kind}"]["conv"][leaf]
                                              for i in range(self.depth)]).astype(x.dtype)
        dilations = [dilation_of(i) for i in range(self.depth)]
        weights = (stack("dilated", "kernel"), stack("dilated", "bias"),
                   stack("pointwise", "kernel"), stack("pointwise", "bias"),
                   jnp.asarray(dilations, jnp.int32))
        body = functools.partial(residual_layer, valid=valid, reach=max(dilations))
        if self.remat:      # a gradient keeps each layer's input only, as unrolled
            body = jax.checkpoint(body)
        x, _ = lax.scan(lambda x, w: (body(x, *w), None), x, weights)
        return x


def dilation_of(layer: int) -> int:
    """The residual layer's dilation: ``3 ** (layer % 10)`` (the original's)."""
    return 3 ** (layer % 10)


class TFGANGenerator(nn.Module):
    """Vocoder features ``(B, T, 128)`` -> waveform ``(B, 441 * T)``.

    The defaults are the published generator (33,883,330 parameters).
    ``weight_norm=True`` builds the training form: every conv holds ``g`` and
    ``v`` instead of ``kernel`` (:mod:`vf_jax.models.weight_norm`); ``fold`` of its
    parameters is the parameter tree of the ``weight_norm=False`` form, which
    computes the same waveform. ``channels``, ``cond_channels`` and
    ``resstack_depth`` shrink it (the tiny training config). ``looped``: the
    residual stacks as loops (:class:`ResStack`; None: the backend's choice,
    :func:`vf_jax.backends.loops`). ``remat``: a
    gradient through it stores each residual layer's input and recomputes the
    layer (the vocoder training's ``remat="all"``, for larger batches or
    crops than fit otherwise); the same function and variables.
    """
    weight_norm: bool = False
    channels: int = CHANNELS
    cond_channels: int = COND_CHANNELS
    resstack_depth: int = RESSTACK_DEPTH
    remat: bool = False
    looped: bool | None = None

    @nn.compact
    def __call__(self, feats, valid=None):
        wn = self.weight_norm
        x = feats
        for i in range(5):
            x = nn.elu(Conv1d(self.cond_channels, 3, weight_norm=wn, name=f"cond{i}")(
                mask_frames(x, valid)))
        x = Conv1d(self.channels, 7, same=False, weight_norm=wn, name="conv_in")(
            reflect_pad(x, 3, valid))
        x = nn.leaky_relu(x, 0.2)
        ch = self.channels
        for stage, f in enumerate(UPSAMPLE):
            ch //= 2
            x = Upsample(ch, f, weight_norm=wn, name=f"up{stage}")(x, valid)
            valid = None if valid is None else valid * f
            x = ResStack(self.resstack_depth, wn, self.remat, self.looped,
                         name=f"res{stage}")(x, valid)
            x = nn.leaky_relu(x, 0.2)
        x = Conv1d(1, 7, same=False, weight_norm=wn, name="conv_out")(reflect_pad(x, 3, valid))
        return jnp.tanh(x[..., 0])


def vocode(params, mel, valid=None):
    """Linear mel ``(B, T, 128)`` -> waveform ``(B, 441 * (T + T % 2 + 4))``
    (with ``valid``: ``(B, 441 * T)`` of which ``441 * (valid + tail)`` count)."""
    feats, fvalid = normalise_mel(mel, valid)
    return TFGANGenerator().apply({"params": params}, feats, fvalid)

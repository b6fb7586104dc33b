"""The vocoder's discriminators. Each maps a waveform ``(B, samples)`` to
``(features, logits)``: the list of its hidden activations (for feature
matching) and its last layer's output.

Where each comes from (the VoiceFixer author names "multi-scale,
multi-resolution and sub-band discriminators" for his unpublished TFGAN
training; the layouts are not published, so these follow the papers):

- :class:`WaveformDiscriminator`, on the waveform at three scales (MelGAN,
  Kumar et al. 2019, sec. 2.2): conv k15, strided grouped convs k41 (stride 4,
  groups in/4), conv k5, conv k3 to one channel; LeakyReLU 0.2; inputs
  average-pooled (window 4, stride 2) between scales.
- :class:`SpectrogramDiscriminator`, TFGAN's frequency-domain discriminator
  (Tian et al. 2020) at several STFT resolutions, built as UnivNet's
  multi-resolution discriminator (Jang et al. 2021): 2-D convs over the log
  magnitude, stride 2 along frequency.
- the sub-band discriminator: a :class:`WaveformDiscriminator` (two strided
  layers) on the PQMF sub-bands as channels (:mod:`vf_jax.audio.subbands`).

All convolutions are weight-normed, as in MelGAN.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vf_jax.audio import stft as stft_lib
from vf_jax.audio import subbands
from vf_jax.models.weight_norm import Conv

SLOPE = 0.2


def average_pool(x, window: int = 4, stride: int = 2, pad: int = 1):
    """``(B, T, C)`` average pooling ignoring the zero padding (PyTorch's
    ``AvgPool1d(4, 2, 1, count_include_pad=False)``, as MelGAN)."""
    dims, strides = (1, window, 1), (1, stride, 1)
    padding = ((0, 0), (pad, pad), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, padding)
    count = jax.lax.reduce_window(jnp.ones((1,) + x.shape[1:2] + (1,), x.dtype), 0.0,
                                  jax.lax.add, dims, strides, padding)
    return total / count


class WaveformDiscriminator(nn.Module):
    """``(B, T, C)`` -> features, logits ``(B, T', 1)`` (MelGAN's block)."""
    channels: int = 16
    max_channels: int = 1024
    downsample: Sequence[int] = (4, 4, 4, 4)

    @nn.compact
    def __call__(self, x):
        features = []
        x = jnp.pad(x, ((0, 0), (7, 7), (0, 0)), mode="reflect")
        x = nn.leaky_relu(Conv(self.channels, (15,), padding=((0, 0),), weight_norm=True,
                               name="conv_in")(x), SLOPE)
        features.append(x)
        ch = self.channels
        for i, s in enumerate(self.downsample):
            out = min(ch * s, self.max_channels)
            x = Conv(out, (10 * s + 1,), strides=(s,), padding=((5 * s, 5 * s),),
                     groups=max(1, ch // 4), weight_norm=True, name=f"down{i}")(x)
            x = nn.leaky_relu(x, SLOPE)
            features.append(x)
            ch = out
        x = nn.leaky_relu(Conv(min(ch * 2, self.max_channels), (5,), weight_norm=True,
                               name="conv_mid")(x), SLOPE)
        features.append(x)
        return features, Conv(1, (3,), weight_norm=True, name="conv_out")(x)


class SpectrogramDiscriminator(nn.Module):
    """Waveform ``(B, samples)`` -> log magnitude ``(B, frames, bins, 1)`` at
    one STFT resolution -> features, logits ``(B, frames, bins', 1)``."""
    n_fft: int
    hop: int
    win_length: int
    channels: int = 32

    @nn.compact
    def __call__(self, wav):
        spec = stft_lib.stft(wav.astype(jnp.float32), self.n_fft, self.hop,
                             win_length=self.win_length)
        x = jnp.log(stft_lib.magnitude(spec, 1e-10))[..., None].astype(wav.dtype)
        features = []
        for i, stride in enumerate((1, 2, 2, 2)):
            x = nn.leaky_relu(Conv(self.channels, (3, 9), strides=(1, stride),
                                   padding=((1, 1), (4, 4)), weight_norm=True,
                                   name=f"conv{i}")(x), SLOPE)
            features.append(x)
        x = nn.leaky_relu(Conv(self.channels, (3, 3), weight_norm=True, name="conv4")(x), SLOPE)
        features.append(x)
        return features, Conv(1, (3, 3), weight_norm=True, name="conv_out")(x)


class Discriminators(nn.Module):
    """Every discriminator the config switches on; ``(B, samples)`` -> a
    list of ``(features, logits)``, one per discriminator. ``remat``: a
    gradient through them stores each one's input and outputs only and
    recomputes its hidden layers, one discriminator at a time."""
    config: ml_collections.ConfigDict
    remat: bool = False

    @nn.compact
    def __call__(self, wav):
        c = self.config
        waveform = nn.remat(WaveformDiscriminator) if self.remat else WaveformDiscriminator
        spectrogram = (nn.remat(SpectrogramDiscriminator) if self.remat
                       else SpectrogramDiscriminator)
        outputs = []
        x = wav[..., None]
        for i in range(c.scales):
            if i:
                x = average_pool(x)
            outputs.append(waveform(c.waveform_channels, c.max_channels, name=f"scale{i}")(x))
        for i, (n_fft, hop, win) in enumerate(c.resolutions):
            outputs.append(spectrogram(n_fft, hop, win, c.spectrogram_channels,
                                       name=f"resolution{i}")(wav))
        if c.subbands:
            usable = wav.shape[-1] // c.subbands * c.subbands
            sub = subbands.analyse(wav[:, :usable], c.subbands)
            outputs.append(waveform(c.waveform_channels, c.max_channels, downsample=(4, 4),
                                    name="subband")(sub))
        return outputs


def config(scales: int = 3, resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
           subbands_: int = 4, waveform_channels: int = 16, max_channels: int = 1024,
           spectrogram_channels: int = 32) -> ml_collections.ConfigDict:
    """The discriminators' settings: ``scales`` waveform discriminators,
    one spectrogram discriminator per ``(n_fft, hop, win)`` resolution (the
    multi-resolution STFT loss's, Parallel WaveGAN's), and a sub-band one on
    ``subbands_`` PQMF bands (0: none)."""
    c = ml_collections.ConfigDict()
    c.scales = scales
    c.resolutions = tuple(tuple(r) for r in resolutions)
    c.subbands = subbands_
    c.waveform_channels = waveform_channels
    c.max_channels = max_channels
    c.spectrogram_channels = spectrogram_channels
    return c

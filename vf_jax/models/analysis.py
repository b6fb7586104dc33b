"""Analysis networks: degraded linear mel ``(B, T, mels)`` -> restored log10 mel.

- :class:`ReleasedAnalysis`, the released two-stage model (``vf.ckpt``): a
  BiGRU denoiser predicts a sigmoid mask on the degraded linear mel; a
  2-channel ResUNet on ``[log10 M, log10 (mask * M)]`` predicts a log10
  residual added to the denoised log-mel (``docs/voicefixer.md``: "Two systems,
  one name", "Released denoiser").
- The paper's three (``docs/voicefixer.md``: "Two systems, one name", "Paper variants"), one
  network on ``log10 M`` predicting the log10 residual, i.e. a multiplicative
  mask: :class:`VFUNet`, :class:`VFBiGRU`, :class:`VFDNN`.

All share one interface: ``(mel, train_bn, deterministic, valid)``, and a
``width`` that scales every hidden size (1: the published sizes; smaller for
tests and experiments that must train in seconds on a CPU; the depth and the
layout stay).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vf_jax.audio import mel as mel_lib
from vf_jax.models.masks import mask_frames
from vf_jax.models.normalization import ScalarBatchNorm
from vf_jax.models.recurrent import BNGRU
from vf_jax.models.resunet import ENCODER_CHANNELS, ResUNet


def scaled(size: int, width: float) -> int:
    """A hidden size at ``width`` times the published one (at least 1)."""
    return max(1, round(size * width))


def unet(width: float) -> ResUNet:
    """The ResUNet (named ``unet``) with its channels at ``width``."""
    return ResUNet(channels=tuple(scaled(c, width) for c in ENCODER_CHANNELS), name="unet")


class MelNetwork(nn.Module):
    """What every analysis network shares: ``n_mels`` mel bands in and out,
    and ``width``, the factor on every hidden size (1: the published sizes).
    Called as ``(mel, train_bn=False, deterministic=True, valid=None)``."""
    n_mels: int = 128
    width: float = 1.0


class Denoiser(MelNetwork):
    """``(B, T, mels)`` linear mel -> mask in (0, 1) of the same shape.

    The Sequential indices of the original (``denoiser.0`` ... ``denoiser.15``)
    name the submodules, so the checkpoint maps one to one.
    """
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, train_bn: bool = False, deterministic: bool = True,
                 valid=None):
        n = self.n_mels
        double, quadruple = scaled(2 * n, self.width), scaled(4 * n, self.width)
        x = ScalarBatchNorm(name="l0")(x, train_bn)
        x = nn.relu(nn.Dense(double, name="l1")(x))
        x = ScalarBatchNorm(name="l3")(x, train_bn)
        x = nn.Dense(quadruple, name="l4")(x)
        x = nn.relu(nn.Dropout(self.dropout)(x, deterministic=deterministic))
        x = BNGRU(double, name="l7")(x, train_bn, valid)
        x = BNGRU(double, name="l8")(x, train_bn, valid)
        x = nn.relu(ScalarBatchNorm(name="l9")(x, train_bn))
        x = nn.Dense(quadruple, name="l11")(x)
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        x = nn.relu(ScalarBatchNorm(name="l13")(x, train_bn))
        return jax.nn.sigmoid(nn.Dense(n, name="l15")(x))


class ReleasedAnalysis(MelNetwork):
    """Degraded linear mel ``(B, T, mels)`` -> restored log10 mel ``(B, T, mels)``.

    ``train_bn``: BatchNorm on batch statistics (the original's mode 2);
    ``deterministic=False`` turns dropout on (needs a ``dropout`` rng).
    ``valid``: true frame counts ``(B,)`` when ``T`` is a padded bucket (a
    multiple of 64); eval mode only.
    """
    @nn.compact
    def __call__(self, mel, train_bn: bool = False, deterministic: bool = True,
                 valid=None):
        mask = Denoiser(self.n_mels, width=self.width, name="denoiser")(
            mel, train_bn, deterministic, valid)
        clean = mask * mel
        log_clean = mel_lib.to_log(clean)
        unet_in = jnp.stack([mel_lib.to_log(mel), log_clean], axis=-1)
        # The original's UNet sees zeros past the true end.
        unet_in = mask_frames(unet_in, valid)
        residual = unet(self.width)(unet_in, train_bn, valid)
        return residual + log_clean


class VFUNet(MelNetwork):
    """VF-UNet: the ResUNet on the 1-channel log-mel, log10 residual."""
    @nn.compact
    def __call__(self, mel, train_bn: bool = False, deterministic: bool = True,
                 valid=None):
        log_mel = mel_lib.to_log(mel)
        residual = unet(self.width)(mask_frames(log_mel, valid)[..., None], train_bn, valid)
        return residual + log_mel


class VFBiGRU(MelNetwork):
    """VF-BiGRU: BN -> Linear 128->256 -> BN_GRU(256, 2 bidirectional layers)
    -> ReLU -> Linear 512->256 -> ReLU -> Linear 256->128; log10 residual."""
    hidden: int = 256

    @nn.compact
    def __call__(self, mel, train_bn: bool = False, deterministic: bool = True,
                 valid=None):
        log_mel = mel_lib.to_log(mel)
        double = scaled(2 * self.n_mels, self.width)
        x = ScalarBatchNorm(name="bn_in")(log_mel, train_bn)
        x = nn.Dense(double, name="dense_in")(x)
        x = nn.relu(BNGRU(scaled(self.hidden, self.width), name="gru")(x, train_bn, valid))
        x = nn.relu(nn.Dense(double, name="dense_mid")(x))
        return nn.Dense(self.n_mels, name="dense_out")(x) + log_mel


class VFDNN(MelNetwork):
    """VF-DNN: Linear 128->256->512->1024->512->256 (ReLU, then a scalar BN
    after each of the first four), then Linear 256->128; log10 residual."""
    widths: tuple = (2, 4, 8, 4, 2)

    @nn.compact
    def __call__(self, mel, train_bn: bool = False, deterministic: bool = True,
                 valid=None):
        log_mel = mel_lib.to_log(mel)
        x = log_mel
        for i, w in enumerate(self.widths):
            x = nn.relu(nn.Dense(scaled(w * self.n_mels, self.width), name=f"dense{i}")(x))
            if i < len(self.widths) - 1:
                x = ScalarBatchNorm(name=f"bn{i}")(x, train_bn)
        return nn.Dense(self.n_mels, name="dense_out")(x) + log_mel

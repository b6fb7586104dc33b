"""The vocoder's losses. Waveforms ``(B, samples)``; every loss is a mean over
the batch (data-parallel shares are averaged).

- Multi-resolution STFT loss (Parallel WaveGAN, Yamamoto et al. 2020, eq. 1-4):
  spectral convergence ``||S - Ŝ||_F / ||S||_F`` (norms over the batch) and
  log-magnitude L1 ``mean |log S - log Ŝ|``, with ``S = sqrt(re² + im² + 1e-7)``,
  averaged over the resolutions.
- Mel L1: ``mean |log10 M - log10 M̂|`` on the shared 44.1 kHz front end
  (2048/441, 128 HTK bands), floored at 1e-5 — the floor of the vocoder's
  input normalisation (:func:`vf_jax.models.vocoder.normalise_mel`).
- Least-squares adversarial losses (LSGAN, Mao et al. 2017, as MelGAN and
  HiFi-GAN): the discriminator pushes real to 1 and generated to 0, the
  generator pushes generated to 1; averaged over discriminators.
- Feature matching (MelGAN, Kumar et al. 2019, eq. 4): L1 between the
  discriminators' hidden activations on real and generated audio, averaged
  over layers and discriminators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib
from vf_jax.audio.io import SAMPLE_RATE

FRONT_END = mel_lib.FRONT_ENDS[SAMPLE_RATE]
# Parallel WaveGAN clamps re² + im² at 1e-7 before the sqrt and the log, which
# bounds d log|S| (a floor of 1e-7 on |S| itself lets gradients reach 1e7). Here
# the 1e-7 is added instead: the same value wherever the power is well above it,
# and a gradient everywhere, where a clamp gives none — a fresh small generator's
# output lies below the clamp in every bin and would never start learning.
POWER_FLOOR = 1e-7
MEL_FLOOR = 1e-5


def stft_loss(real, fake, n_fft: int, hop: int, win_length: int,
              axis_name: str | None = None):
    """``(spectral convergence, log-magnitude L1)`` at one resolution.

    With ``axis_name`` (``jax.pmap``) the batch is this device's share and the
    spectral convergence's norms are summed over the axis, so every device
    returns the global batch's ratio (a mean of per-share ratios is not it).
    """
    def mag(x):
        spec = stft_lib.stft(x, n_fft, hop, win_length=win_length)
        return jnp.sqrt(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2 + POWER_FLOOR)
    s, s_hat = mag(real), mag(fake)
    # Frobenius norms over the whole batch (as Parallel WaveGAN): a silent crop
    # does not blow the ratio up.
    total = (lambda x: jax.lax.psum(x, axis_name)) if axis_name else (lambda x: x)
    sc = jnp.sqrt(total(jnp.sum((s - s_hat) ** 2))) / jnp.sqrt(total(jnp.sum(s ** 2)))
    log_mag = jnp.mean(jnp.abs(jnp.log(s) - jnp.log(s_hat)))
    return sc, log_mag


def multi_resolution_stft_loss(real, fake, resolutions, axis_name: str | None = None):
    """``(spectral convergence, log-magnitude L1)`` averaged over the
    ``(n_fft, hop, win_length)`` resolutions (``axis_name``: :func:`stft_loss`)."""
    parts = [stft_loss(real, fake, *r, axis_name=axis_name) for r in resolutions]
    return (sum(p[0] for p in parts) / len(parts), sum(p[1] for p in parts) / len(parts))


def log_mel(wav):
    """``log10(max(mel, 1e-5))`` ``(B, frames, 128)`` of the shared front end."""
    mel, _ = mel_lib.mel_spectrogram(wav, FRONT_END)
    return jnp.log10(jnp.maximum(mel, MEL_FLOOR))


def mel_l1(real, fake):
    return jnp.mean(jnp.abs(log_mel(real) - log_mel(fake)))


def discriminator_loss(real_outputs, fake_outputs):
    """LSGAN: ``mean_d [mean (D(x) - 1)² + mean D(G(s))²]``."""
    terms = [jnp.mean((r - 1.0) ** 2) + jnp.mean(f ** 2)
             for (_, r), (_, f) in zip(real_outputs, fake_outputs)]
    return sum(terms) / len(terms)


def adversarial_loss(fake_outputs):
    """LSGAN, generator side: ``mean_d mean (D(G(s)) - 1)²``."""
    return sum(jnp.mean((f - 1.0) ** 2) for _, f in fake_outputs) / len(fake_outputs)


def feature_matching_loss(real_outputs, fake_outputs):
    """``mean_d mean_l mean |D_l(x) - D_l(G(s))|``."""
    per_disc = []
    for (real_feats, _), (fake_feats, _) in zip(real_outputs, fake_outputs):
        per_disc.append(sum(jnp.mean(jnp.abs(r - f)) for r, f in zip(real_feats, fake_feats))
                        / len(real_feats))
    return sum(per_disc) / len(per_disc)

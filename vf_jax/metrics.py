"""Restoration metrics on NumPy arrays (the paper's definitions).

- LSD (facts, "Evaluation"): STFT 2048/441 magnitudes ``S``, ``Ŝ``; mean over
  frames of ``sqrt(mean over bins of (log10(S²) - log10(Ŝ²))²)``; a 1e-8 floor
  on the power keeps silence finite.
- mel LSD (training's validation, which has no waveform): the same formula on
  the mel magnitudes ``M`` (``log10(M²) = 2 log10 M``) over the valid frames.
- SI-SDR: ``10 log10(|a s|² / |a s - ŝ|²)`` with ``a = <ŝ, s> / |s|²`` (zero
  means removed), infinite for a perfect match.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vf_jax import stft as stft_lib


def log_spectral_distance(log_power_ref, log_power_est, valid=None):
    """LSD from log10 powers ``(..., frames, bins)``: the mean over frames of
    the RMS over bins of the difference, ``(...)``. ``valid`` ``(...)``: frames
    that count (the rest are padding); all when None. jnp, jittable."""
    per_frame = jnp.sqrt(jnp.mean((log_power_ref - log_power_est) ** 2, axis=-1))
    if valid is None:
        return jnp.mean(per_frame, axis=-1)
    mask = jnp.arange(per_frame.shape[-1]) < jnp.asarray(valid)[..., None]
    return jnp.sum(per_frame * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1)


def mel_lsd(log_mel_ref, log_mel_est, valid=None):
    """LSD on log10 mel magnitudes ``(..., frames, mels)`` -> ``(...)``."""
    return log_spectral_distance(2.0 * log_mel_ref, 2.0 * log_mel_est, valid)


def lsd(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048,
        hop: int = 441) -> float:
    n = min(len(reference), len(estimate))
    s = np.abs(np.asarray(stft_lib.stft(np.asarray(reference[:n], np.float32), n_fft, hop))) ** 2
    e = np.abs(np.asarray(stft_lib.stft(np.asarray(estimate[:n], np.float32), n_fft, hop))) ** 2
    return float(log_spectral_distance(np.log10(np.maximum(s, 1e-8)),
                                       np.log10(np.maximum(e, 1e-8))))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(len(reference), len(estimate))
    s = np.asarray(reference[:n], np.float64)
    e = np.asarray(estimate[:n], np.float64)
    s, e = s - s.mean(), e - e.mean()
    energy = np.dot(s, s)
    if energy == 0.0:
        return float("nan")
    target = np.dot(e, s) / energy * s
    noise = e - target
    noise_energy = np.dot(noise, noise)
    if noise_energy == 0.0:
        return float("inf")
    return float(10.0 * np.log10(np.dot(target, target) / noise_energy))

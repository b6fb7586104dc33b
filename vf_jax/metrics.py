"""Restoration metrics on NumPy arrays (the paper's definitions).

- LSD (facts, "Evaluation"): STFT 2048/441 magnitudes ``S``, ``Ŝ``; mean over
  frames of ``sqrt(mean over bins of (log10(S²) - log10(Ŝ²))²)``; a 1e-8 floor
  on the power keeps silence finite.
- SI-SDR: ``10 log10(|a s|² / |a s - ŝ|²)`` with ``a = <ŝ, s> / |s|²`` (zero
  means removed), infinite for a perfect match.
"""

from __future__ import annotations

import numpy as np

from vf_jax import stft as stft_lib


def lsd(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048,
        hop: int = 441) -> float:
    n = min(len(reference), len(estimate))
    s = np.abs(np.asarray(stft_lib.stft(np.asarray(reference[:n], np.float32), n_fft, hop))) ** 2
    e = np.abs(np.asarray(stft_lib.stft(np.asarray(estimate[:n], np.float32), n_fft, hop))) ** 2
    diff = np.log10(np.maximum(s, 1e-8)) - np.log10(np.maximum(e, 1e-8))
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=-1))))


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

"""Synthetic noise, room impulse responses and speech-like signals, for when
none are at hand.

Textbook models, not recordings: pink (1/f) Gaussian noise, and a
statistical room impulse response (a direct path followed by Gaussian noise
under an exponential envelope that falls 60 dB in RT60, Schroeder's diffuse
model). Used by ``python -m vf_jax degrade`` and the demo when no noise or RIR
files are given.

The speech-like signals (:func:`speech_like`, :func:`voiced_signal`,
:func:`training_batch`) are harmonic tones with gliding pitch, a slow
envelope and a little noise: inputs with speech's levels and spectral slope
for the tests and benchmarks, seeded, so every run sees the same samples.
"""

from __future__ import annotations

import numpy as np

from vf_jax.audio.io import SAMPLE_RATE


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(samples,)`` float32 noise with a 1/f power spectrum, peak 1."""
    spec = np.fft.rfft(rng.standard_normal(samples))
    f = np.fft.rfftfreq(samples, 1.0 / SAMPLE_RATE)
    spec /= np.sqrt(np.maximum(f, 20.0))          # flat below 20 Hz
    x = np.fft.irfft(spec, samples)
    return (x / max(np.max(np.abs(x)), 1e-12)).astype(np.float32)


def room_impulse_response(rng: np.random.Generator, rt60: float | None = None,
                          rt60_range: tuple[float, float] = (0.2, 0.8)) -> np.ndarray:
    """``(samples,)`` float32 RIR: a unit direct path at t = 0, then a diffuse
    tail from 2-10 ms on whose envelope ``exp(-6.91 t / rt60)`` reaches -60 dB
    at ``rt60`` seconds (drawn from ``rt60_range`` if not given)."""
    rt60 = float(rng.uniform(*rt60_range)) if rt60 is None else float(rt60)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    start = int(rng.uniform(0.002, 0.010) * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail[:start] = 0.0
    tail *= 0.5 / max(np.sqrt(np.sum(tail ** 2)), 1e-12)   # direct-to-reverberant ~ 6 dB
    tail[0] = 1.0
    return tail.astype(np.float32)


# --------------------------------------------------------- speech-like ---

def speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """``(samples,)`` float32 at 44.1 kHz, peak 0.5: 39 harmonics of a pitch
    gliding around 120 Hz, a slow envelope, noise 26 dB below."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 40))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    x += 0.05 * rng.standard_normal(len(t))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def voiced_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """``(samples,)`` float32 at 44.1 kHz: 7 harmonics of a pitch gliding
    around 140 Hz, a slow envelope, light noise, and a near-silent first
    tenth (the restorer's quiet-start and peak handling see both)."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(0.2 / k * np.sin(k * phase) for k in range(1, 8))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    x += 0.02 * rng.standard_normal(n)
    x[: n // 10] *= 0.01
    return x.astype(np.float32)


def training_batch(n: int, crop_seconds: float = 0.5, seed: int = 0) -> dict:
    """A raw analysis-training batch of ``n`` crops (the loader's fields):
    ``speech`` ``(n, samples)`` of :func:`speech_like` (the last clip half
    length, zero-padded, with its ``speech_length``), white ``noise`` and
    decaying random ``rir`` ``(n, 2000)``."""
    rng = np.random.default_rng(seed)
    crop = int(crop_seconds * SAMPLE_RATE)
    speech = np.stack([speech_like(crop_seconds, seed=seed + i) for i in range(n)])
    lengths = np.full(n, crop, np.int32)
    lengths[-1] = crop // 2
    speech[-1, crop // 2:] = 0
    return {"speech": speech, "speech_length": lengths,
            "noise": rng.standard_normal((n, crop)).astype(np.float32),
            "rir": (np.exp(-np.arange(2000) / 300.0)[None]
                    * rng.standard_normal((n, 2000))).astype(np.float32)}

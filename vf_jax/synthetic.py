"""Synthetic noise and room impulse responses, for when none are at hand.

Textbook models, not recordings: pink (1/f) Gaussian noise, and a
statistical room impulse response (a direct path followed by Gaussian noise
under an exponential envelope that falls 60 dB in RT60, Schroeder's diffuse
model). Used by ``python -m vf_jax degrade`` and the demo when no noise or RIR
files are given.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 44100


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

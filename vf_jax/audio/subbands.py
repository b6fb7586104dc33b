"""Pseudo-QMF sub-band analysis and synthesis (cosine-modulated filter bank).

The VoiceFixer author's vocoder used a sub-band discriminator on a PQMF split
(voicefixer_main issue 10; his ``torchsubband``). The bank here follows the
textbook design (Nguyen 1994; the settings of Multi-band MelGAN, Yang et al.
2020): a Kaiser-windowed ideal low-pass prototype ``h`` of ``taps + 1``
coefficients, band ``k`` of ``N`` modulated by
``cos((2k + 1) pi / (2N) (n - taps / 2) ± (-1)^k pi / 4)``. Analysis filters
then keeps every N-th sample; synthesis inserts zeros, filters and sums, which
reconstructs the input up to a small aliasing error (tested).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jax import lax


def prototype(taps: int, cutoff: float, beta: float) -> np.ndarray:
    """Kaiser-windowed ideal low-pass, cut-off ``cutoff * pi``, ``taps + 1`` long."""
    n = np.arange(taps + 1) - taps / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ideal = np.sin(np.pi * cutoff * n) / (np.pi * n)
    ideal[taps // 2] = cutoff
    return ideal * np.kaiser(taps + 1, beta)


@functools.lru_cache(maxsize=8)
def design_cutoff(bands: int, taps: int = 62, beta: float = 9.0) -> float:
    """The prototype cut-off for near-perfect reconstruction: the one whose
    power response best satisfies ``|P(w)|² + |P(pi/N - w)|² = 1`` over
    ``[0, pi/N]`` (grid search; 0.142 for four bands, as Multi-band MelGAN)."""
    w = np.linspace(0, np.pi / bands, 256)
    n = np.arange(taps + 1)

    def error(c):
        h = prototype(taps, c, beta)
        power = lambda f: np.abs(np.exp(-1j * np.outer(f, n)) @ h) ** 2
        return np.max(np.abs(power(w) + power(np.pi / bands - w) - 1))
    grid = np.linspace(0.6, 1.4, 801) / (2 * bands)
    return float(grid[np.argmin([error(c) for c in grid])])


@functools.lru_cache(maxsize=8)
def filters(bands: int, taps: int = 62, beta: float = 9.0):
    """``(analysis, synthesis)``, each ``(taps + 1, bands)`` float32."""
    n = np.arange(taps + 1) - taps / 2
    h = prototype(taps, design_cutoff(bands, taps, beta), beta)
    k = np.arange(bands)[None, :]
    phase = (2 * k + 1) * np.pi / (2 * bands) * n[:, None]
    sign = (-1.0) ** k * np.pi / 4
    analysis = 2 * h[:, None] * np.cos(phase + sign)
    synthesis = 2 * h[:, None] * np.cos(phase - sign)
    return analysis.astype(np.float32), synthesis.astype(np.float32)


def analyse(x, bands: int, **design):
    """``(B, samples)`` -> sub-bands ``(B, samples / bands, bands)`` (samples a
    multiple of ``bands``)."""
    a, _ = filters(bands, **design)
    taps = a.shape[0] - 1
    kernel = jnp.asarray(a[::-1], x.dtype)[:, None, :]           # (taps+1, 1, bands)
    return lax.conv_general_dilated(
        x[..., None], kernel, window_strides=(bands,), padding=[(taps // 2, taps // 2)],
        dimension_numbers=("NHC", "HIO", "NHC"))


def synthesise(sub, **design):
    """Sub-bands ``(B, frames, bands)`` -> ``(B, frames * bands)``."""
    bands = sub.shape[-1]
    _, g = filters(bands, **design)
    taps = g.shape[0] - 1
    kernel = jnp.asarray(g[::-1] * bands, sub.dtype)[:, :, None]  # (taps+1, bands, 1)
    y = lax.conv_general_dilated(
        sub, kernel, window_strides=(1,), padding=[(taps // 2, taps // 2 + bands - 1)],
        lhs_dilation=(bands,), dimension_numbers=("NHC", "HIO", "NHC"))
    return y[..., 0]

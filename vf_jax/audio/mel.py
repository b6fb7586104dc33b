"""Mel filterbank, log compression and the front-end settings of each sample rate.

As the original's ``MelScale`` (``docs/voicefixer.md``, "Front end"): HTK mel
scale, fmin 0, fmax = sr / 2, plain triangles without area normalisation, equal to
``librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=True, norm=None)``.
The mel spectrogram is ``|STFT| @ fb`` on magnitudes (not power).
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from vf_jax.audio import stft as stft_lib

LOG_FLOOR = 1e-8      # to_log clamps here
LOG_CEILING = 5.0     # from_log clamps the exponent here
POWER_FLOOR = 1e-8    # the original's STFT magnitude floor (on power)


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """STFT and mel settings for one sample rate."""
    sample_rate: int
    n_fft: int
    hop: int
    n_mels: int

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        return stft_lib.num_frames(length, self.hop)

    def filterbank(self) -> np.ndarray:
        return mel_filterbank(self.sample_rate, self.n_fft, self.n_mels)


# The original defines these three; the published vocoder is 44.1 kHz only.
FRONT_ENDS = {
    44100: FrontEnd(44100, 2048, 441, 128),
    24000: FrontEnd(24000, 768, 240, 80),
    16000: FrontEnd(16000, 512, 160, 80),
}


def hz_to_mel_htk(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz_htk(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """HTK triangular filterbank, ``(n_fft // 2 + 1, n_mels)`` float32.

    Triangle ``i`` rises from edge ``i`` to centre ``i + 1`` and falls to edge
    ``i + 2``, the ``n_mels + 2`` edges evenly spaced in HTK mel; peak 1.
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz_htk(np.linspace(hz_to_mel_htk(fmin), hz_to_mel_htk(fmax),
                                      n_mels + 2))
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz[None, :] - lo) / (centre - lo)
    falling = (hi - bin_hz[None, :]) / (hi - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights.T.astype(np.float32)


def to_log(x):
    """``log10(max(x, 1e-8))``."""
    return jnp.log10(jnp.maximum(x, LOG_FLOOR))


def from_log(y):
    """``10 ** min(y, 5)``."""
    return jnp.power(10.0, jnp.minimum(y, LOG_CEILING))


def mel_spectrogram(x, front_end: FrontEnd, n_frames: int | None = None,
                    length=None, power_floor: float = POWER_FLOOR):
    """Linear mel magnitude, ``(..., samples)`` -> ``(..., frames, n_mels)``.

    Returns the linear STFT magnitude too: ``(mel, mag)`` with ``mag`` of shape
    ``(..., frames, n_freq)``.
    """
    spec = stft_lib.stft(x, front_end.n_fft, front_end.hop, n_frames, length)
    mag = stft_lib.magnitude(spec, power_floor)
    fb = jnp.asarray(front_end.filterbank(), mag.dtype)
    return mag @ fb, mag

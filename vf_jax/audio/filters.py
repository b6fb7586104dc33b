"""Filter design for the degradations, in the frequency domain.

On an accelerator a recursive filter over 132 300 samples is a long
sequential loop, so filters run in the frequency domain. A forward-backward
filter has the zero-phase response ``|H|^2``; through the bilinear transform
``|H(e^jw)| = |H_a(j tan(w/2) / tan(pi Wn/2))|`` for the analog prototype
``H_a`` (scipy's ``buttap``/``cheb1ap``/``ellipap``/``besselap``, tabulated at
import), so each draw needs only its prototype's poles and zeros. Signals are
zero-padded by half a second so the filters' tails do not wrap around; the FFT
lengths are the fast ones of the platform being compiled for (powers of two on
TPU, :mod:`vf_jax.backends`), which changes nothing but rounding.
Differences from the original, by design: the signal ends see zeros
rather than ``sosfiltfilt``'s odd extension; the resampler's aliasing of its
stop-band residue (below -50 dB) is not reproduced.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import signal as sps

from vf_jax import backends
from vf_jax.audio import stft as stft_lib
from vf_jax.audio.io import SAMPLE_RATE

NYQUIST = SAMPLE_RATE / 2

IIR_FAMILIES = ("butter", "cheby1", "ellip", "bessel")
BAND_LIMITS = IIR_FAMILIES + ("stft", "stft_hard")   # index = filter type
MIN_ORDER, MAX_ORDER = 2, 9
CHEBY1_RIPPLE_DB = 0.1
ELLIP_RIPPLE_DB, ELLIP_STOP_DB = 0.1, 60.0
RESAMPLE_KAISER_BETA = 5.0        # scipy.signal.resample_poly's default window
RESAMPLE_ZERO_CROSSINGS = 10      # its half length, in periods of the lower rate
MAX_RESAMPLE_TAPS = 300           # half length at 44.1 kHz for the lowest cut-off
HARD_STFT = (2048, 441)
# Zero padding for frequency-domain filtering: the slowest-decaying filter here
# (9th-order elliptic at 750 Hz) rings down by 60 dB within ~150 ms each way.
FILTER_MARGIN = SAMPLE_RATE // 2


# ---------------------------------------------------------- FFT filtering ---

def fft_size(length: int, family: str | None = None) -> int:
    """An FFT size >= ``length`` + :data:`FILTER_MARGIN` that the platform
    ``family`` (default: the one being traced for, :mod:`vf_jax.backends`)
    computes fast: room for the filters' tails on both sides without
    wrapping round."""
    return backends.fft_length(length + FILTER_MARGIN, family)


def frequencies(n_fft: int) -> np.ndarray:
    """Hz of the ``rfft`` bins of size ``n_fft``."""
    return np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)


def filter_response(x, response, n_fft: int):
    """``x`` ``(samples,)`` filtered by a response on the ``rfft`` grid of
    ``n_fft`` (real: zero phase; complex: e.g. a causal filter)."""
    spec = jnp.fft.rfft(x, n_fft)
    return jnp.fft.irfft(spec * response, n_fft)[: x.shape[-1]].astype(x.dtype)


# -------------------------------------------------- IIR low-pass families ---

@functools.cache
def _prototypes() -> tuple[np.ndarray, ...]:
    """Analog low-pass prototypes ``(families, orders, MAX_ORDER)``: zeros and
    poles (complex, padded) with their masks, and log gains."""
    shape = (len(IIR_FAMILIES), MAX_ORDER - MIN_ORDER + 1, MAX_ORDER)
    zeros, poles = np.zeros(shape, np.complex128), np.zeros(shape, np.complex128)
    zmask, pmask = np.zeros(shape), np.zeros(shape)
    log_gain = np.zeros(shape[:2])
    design = {
        "butter": sps.buttap,
        "cheby1": lambda n: sps.cheb1ap(n, CHEBY1_RIPPLE_DB),
        "ellip": lambda n: sps.ellipap(n, ELLIP_RIPPLE_DB, ELLIP_STOP_DB),
        "bessel": lambda n: sps.besselap(n, norm="phase"),
    }
    for f, family in enumerate(IIR_FAMILIES):
        for o, order in enumerate(range(MIN_ORDER, MAX_ORDER + 1)):
            z, p, k = design[family](order)
            zeros[f, o, :len(z)], zmask[f, o, :len(z)] = z, 1
            poles[f, o, :len(p)], pmask[f, o, :len(p)] = p, 1
            log_gain[f, o] = np.log(abs(k))
    return zeros, zmask, poles, pmask, log_gain


def iir_lowpass_power(family, order, cutoff, freqs):
    """``|H(f)|^2`` of the digital low-pass scipy designs with
    ``iirfilter(order, cutoff / nyquist, btype="low")`` for ``family`` (index
    into :data:`IIR_FAMILIES`): the zero-phase response of ``sosfiltfilt``.

    ``family``, ``order`` and ``cutoff`` may be traced; ``freqs`` in Hz.
    """
    zeros, zmask, poles, pmask, log_gain = (jnp.asarray(a) for a in _prototypes())
    idx = (family, order - MIN_ORDER)
    z, zm, p, pm = zeros[idx], zmask[idx], poles[idx], pmask[idx]
    # Bilinear transform with scipy's pre-warping: analog frequency of each bin.
    half = jnp.minimum(jnp.pi * freqs / SAMPLE_RATE, jnp.pi / 2 - 1e-6)
    nu = (jnp.tan(half) / jnp.tan(jnp.pi * cutoff / SAMPLE_RATE))[:, None]
    # |H(j nu)|^2 = k^2 prod |j nu - z|^2 / prod |j nu - p|^2, as a product of
    # bounded factors (zero over pole, then the surplus poles) so that nothing
    # overflows in float32 far into the stop band.
    dist2 = lambda r: (nu - jnp.imag(r)) ** 2 + jnp.real(r) ** 2
    zero_terms = jnp.where(zm > 0, dist2(z), 1.0)
    pole_terms = jnp.where(pm > 0, dist2(p), 1.0)
    power = jnp.prod(zero_terms / pole_terms, axis=-1) * jnp.exp(2 * log_gain[idx])
    return power.astype(jnp.float32)


# ---------------------------------------------- resample-style low-pass ---

def resample_lowpass_power(cutoff, n_fft: int):
    """Zero-phase response of ``resample_poly`` down to ``int(2 * cutoff)`` Hz
    and back up: its anti-aliasing filter (Kaiser-windowed sinc, beta 5, ten
    zero crossings of the lower rate each side, cut-off at half the lower
    rate), applied twice. ``cutoff`` may be traced."""
    low_rate = jnp.floor(cutoff / NYQUIST * SAMPLE_RATE)
    half_len = RESAMPLE_ZERO_CROSSINGS * SAMPLE_RATE / low_rate      # in samples
    n = jnp.arange(-MAX_RESAMPLE_TAPS, MAX_RESAMPLE_TAPS + 1, dtype=jnp.float32)
    inside = jnp.abs(n) <= half_len
    arg = jnp.sqrt(jnp.clip(1.0 - (n / half_len) ** 2, 0.0, 1.0))
    window = jnp.where(inside, jax.scipy.special.i0(RESAMPLE_KAISER_BETA * arg), 0.0)
    taps = window * jnp.sinc(low_rate * n / SAMPLE_RATE)
    taps = taps / jnp.sum(taps)                                 # unit gain at DC
    # Centre tap at index 0, negative lags wrapped to the end: a real response.
    buffer = jnp.zeros(n_fft, jnp.float32).at[n.astype(jnp.int32) % n_fft].set(taps)
    response = jnp.real(jnp.fft.rfft(buffer))
    return (response ** 2).astype(jnp.float32)


def stft_hard_lowpass(x, cutoff):
    """Zero the STFT bins (2048/441, Hann, centred) from ``int(1025 * cutoff /
    22050)`` up and resynthesise; ``(samples,)`` -> ``(samples,)``."""
    n_fft, hop = HARD_STFT
    spec = stft_lib.stft(x, n_fft, hop)
    bins = n_fft // 2 + 1
    first_cut = jnp.floor(bins * cutoff / NYQUIST).astype(jnp.int32)
    spec = spec * (jnp.arange(bins) < first_cut)
    return stft_lib.istft(spec, hop, x.shape[-1], n_fft=n_fft).astype(x.dtype)


# ------------------------------------------------- sox-style biquads ---

def _biquad_response(b, a, n_fft: int):
    """Complex response of a causal biquad ``b/a`` on the ``rfft`` grid."""
    w = 2 * np.pi * frequencies(n_fft) / SAMPLE_RATE
    z1 = jnp.asarray(np.exp(-1j * w), jnp.complex64)          # constants
    z2 = jnp.asarray(np.exp(-2j * w), jnp.complex64)
    return (b[0] + b[1] * z1 + b[2] * z2) / (a[0] + a[1] * z1 + a[2] * z2)


def biquad(kind: str, freq, gain_db=0.0, q=1 / np.sqrt(2)):
    """Coefficients ``(b, a)`` of the audio-EQ-cookbook biquads sox uses:
    ``lowpass``/``highpass`` (two poles, Q 0.707 by default) and ``bass``/
    ``treble`` shelves (slope 0.5)."""
    w0 = 2 * jnp.pi * freq / SAMPLE_RATE
    cos, sin = jnp.cos(w0), jnp.sin(w0)
    if kind in ("lowpass", "highpass"):
        alpha = sin / (2 * q)
        edge = (1 - cos) / 2 if kind == "lowpass" else (1 + cos) / 2
        mid = (1 - cos) if kind == "lowpass" else -(1 + cos)
        b = jnp.stack([edge, mid, edge])
        a = jnp.stack([1 + alpha, -2 * cos, 1 - alpha])
        return b, a
    amp = 10 ** (gain_db / 40)
    alpha = sin / 2 * jnp.sqrt((amp + 1 / amp) * (1 / 0.5 - 1) + 2)
    root = 2 * jnp.sqrt(amp) * alpha
    sign = 1 if kind == "treble" else -1
    b = amp * jnp.stack([(amp + 1) + sign * (amp - 1) * cos + root,
                         -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos),
                         (amp + 1) + sign * (amp - 1) * cos - root])
    a = jnp.stack([(amp + 1) - sign * (amp - 1) * cos + root,
                   sign * 2 * ((amp - 1) - sign * (amp + 1) * cos),
                   (amp + 1) - sign * (amp - 1) * cos - root])
    return b, a


def apply_biquad(x, kind: str, freq, gain_db=0.0):
    """Causal biquad filtering of ``(samples,)`` (output as long as the input)."""
    n_fft = fft_size(x.shape[-1])
    b, a = biquad(kind, freq, gain_db)
    return filter_response(x, _biquad_response(b, a, n_fft), n_fft)

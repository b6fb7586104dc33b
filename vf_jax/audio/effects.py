"""The GSR degradations' effects, each a pure JAX function of a signal
``(samples,)`` float32 at 44.1 kHz and its parameters (traced values, so one
compiled program serves every draw; batch with ``jax.vmap``): Freeverb in
closed form, clipping, RIR reverberation, noise at an SNR with the original's
level matching, quantisation, fades, and the band limits (IIR families,
resampling, STFT). Their sources in the original are listed in
:mod:`vf_jax.audio.degradations`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vf_jax import backends
from vf_jax.audio.filters import (BAND_LIMITS, IIR_FAMILIES, fft_size, filter_response, frequencies,
                                  iir_lowpass_power, resample_lowpass_power, stft_hard_lowpass)

# ----------------------------------------------------------- freeverb ---

# Jezar's public-domain Freeverb at 44.1 kHz: eight damped feedback combs in
# parallel, then four Schroeder allpasses in series (the design sox's
# ``reverb`` follows). Tunings in samples.
FREEVERB_COMBS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
FREEVERB_ALLPASSES = (556, 441, 341, 225)
FREEVERB_ALLPASS_FEEDBACK = 0.5
FREEVERB_INPUT_GAIN = 0.015
FREEVERB_IR_SAMPLES = 1 << 16        # 1.49 s of tail kept
_FREEVERB_GRID = 1 << 17


def freeverb_impulse_response(reverberance, damping, room_scale):
    """Freeverb's impulse response ``(FREEVERB_IR_SAMPLES,)`` (wet part only).

    ``reverberance``, ``damping`` and ``room_scale`` in [0, 1] (sox's
    percentages / 100): comb feedback ``0.7 + 0.28 reverberance``, damping
    ``0.4 damping``, delays scaled by ``0.1 + 0.9 room_scale`` (sox's room
    scale; delays rounded to samples). Every block is linear, so the response
    is evaluated in closed form on the circle ``|z| = rho``: the inverse FFT
    then holds ``h[n] rho^-n``, whose wrap-around (a tail longer than the grid)
    is attenuated 60 dB, and multiplying back by ``rho^n`` restores ``h``.
    """
    n = _FREEVERB_GRID
    rho = 10.0 ** (3.0 / n)                               # rho^-n = 1e-3
    bins = jnp.arange(n // 2 + 1, dtype=jnp.int32)

    def z_power(delay):
        """``z^-delay`` on the circle; the phase from ``bin * delay mod n`` in
        integers, exact however long the delay (float32 would lose it)."""
        turns = (bins * delay.astype(jnp.int32)) % n
        phase = -2 * jnp.pi * turns.astype(jnp.float32) / n
        return jnp.exp(1j * phase) * rho ** (-delay.astype(jnp.float32))

    feedback = 0.7 + 0.28 * reverberance
    damp = 0.4 * damping
    scale = 0.1 + 0.9 * room_scale
    lowpass = (1 - damp) / (1 - damp * z_power(jnp.asarray(1.0)))   # the combs' damping
    total = jnp.zeros(n // 2 + 1, jnp.complex64)
    for delay in FREEVERB_COMBS:
        zd = z_power(jnp.round(delay * scale))
        total = total + zd / (1 - feedback * lowpass * zd)
    for delay in FREEVERB_ALLPASSES:
        zd = z_power(jnp.round(delay * scale))
        total = total * (-1 + zd / (1 - FREEVERB_ALLPASS_FEEDBACK * zd))
    ir = jnp.fft.irfft(FREEVERB_INPUT_GAIN * total, n)[:FREEVERB_IR_SAMPLES]
    ir = ir * jnp.asarray(rho ** np.arange(FREEVERB_IR_SAMPLES), jnp.float32)
    fade = np.ones(FREEVERB_IR_SAMPLES, np.float32)
    fade[-2048:] = np.cos(0.5 * np.pi * np.arange(2048) / 2048) ** 2
    return (ir * fade).astype(jnp.float32)


def convolve_head(x, h):
    """The first ``len(x)`` samples of the full linear convolution ``x * h``
    (FFT, no wrap-around)."""
    length = x.shape[-1]
    n_fft = backends.fft_length(length + h.shape[-1] - 1)
    # Both transforms as one FFT: each distinct FFT costs seconds to compile on a TPU.
    pad = lambda v: jnp.pad(v.astype(jnp.float32), (0, n_fft - v.shape[-1]))
    spectra = jnp.fft.rfft(jnp.stack([pad(x), pad(h)]), axis=-1)
    return jnp.fft.irfft(spectra[0] * spectra[1], n_fft)[:length]


def freeverb(x, reverberance, damping, room_scale, wet):
    """``(1 - wet) x + wet * (x * freeverb response)``, first ``len(x)`` samples."""
    ir = freeverb_impulse_response(reverberance, damping, room_scale)
    return ((1 - wet) * x + wet * convolve_head(x, ir)).astype(x.dtype)


def peak(x):
    return jnp.max(jnp.abs(x))


def clip(x, ratio):
    """Clip at ``peak(x) / ratio``."""
    threshold = peak(x) / ratio
    return jnp.clip(x, -threshold, threshold)


def reverberate(x, rir):
    """Full convolution with ``rir`` ``(rir_samples,)``, the first
    ``len(x)`` samples kept, rescaled to a 0.98 peak if the peak exceeds 0.99
    (the original's ``reverb_rir``)."""
    y = convolve_head(x, rir)
    top = peak(y)
    return jnp.where(top > 0.99, y / jnp.maximum(top, 1e-12) * 0.98, y).astype(x.dtype)


def match_noise(speech, noise, snr_db, level: str = "mean_abs"):
    """Noise scaled for ``speech + noise`` at ``snr_db``.

    ``level="mean_abs"`` (the original): the noise is peak-normalised, given
    the speech's mean absolute level when that exceeds 0.02, then divided by
    ``10 ** (snr / 20)``, so the SNR holds between mean absolute levels.
    ``level="rms"``: the SNR holds between powers.
    """
    gain = 10 ** (snr_db / 20)
    if level == "rms":
        rms = lambda v: jnp.sqrt(jnp.mean(v ** 2))
        return noise * rms(speech) / jnp.maximum(rms(noise), 1e-12) / gain
    if level != "mean_abs":
        raise ValueError(f"unknown level {level!r}")
    noise = noise / jnp.maximum(peak(noise), 1e-12)
    speech_level = jnp.mean(jnp.abs(speech))
    noise_level = jnp.maximum(jnp.mean(jnp.abs(noise)), 1e-12)
    noise = jnp.where(speech_level > 0.02, noise * speech_level / noise_level, noise)
    return noise / gain


def quantise(x, bits):
    """Quantisation to ``2 ** bits`` levels ``-1 + (2k + 1) / 2 ** bits`` of the
    peak, each sample taking the highest level strictly below it, as the
    original (``np.digitize(x, levels, right=True) - 1``); samples at or below
    the lowest level take it (the original's index wraps round to the top)."""
    levels = 2.0 ** bits
    top = jnp.maximum(peak(x), 1e-12)
    k = jnp.clip(jnp.ceil((x / top + 1) * levels / 2 - 0.5) - 1, 0, levels - 1)
    return ((-1 + (2 * k + 1) / levels) * top).astype(x.dtype)


def fade(x, fade_in, fade_out):
    """Linear fade in over the first ``fade_in`` and out over the last
    ``fade_out`` fraction of the signal."""
    t = (jnp.arange(x.shape[-1]) + 0.5) / x.shape[-1]
    ramp_in = jnp.clip(t / jnp.maximum(fade_in, 1e-6), 0, 1)
    ramp_out = jnp.clip((1 - t) / jnp.maximum(fade_out, 1e-6), 0, 1)
    return x * ramp_in * ramp_out


def band_limit_responses(kind, cutoff, order, n_fft: int):
    """``(first, resample)`` zero-phase responses on the ``rfft`` grid: the
    filter ``kind`` (1 for "stft_hard", which works on the STFT) and the
    "stft" pass. Computed once per draw, shared by speech and noise."""
    freqs = jnp.asarray(frequencies(n_fft), jnp.float32)
    iir = iir_lowpass_power(jnp.minimum(kind, len(IIR_FAMILIES) - 1), order, cutoff, freqs)
    resample = resample_lowpass_power(cutoff, n_fft)
    first = jnp.where(kind < len(IIR_FAMILIES), iir,
                      jnp.where(kind == BAND_LIMITS.index("stft"), resample, 1.0))
    return first, resample


def apply_band_limit(x, kind, cutoff, responses, second_resample):
    """Band-limit ``(samples,)`` with :func:`band_limit_responses`, then the
    second "stft" pass when ``second_resample``."""
    first, resample = responses
    x = jnp.where(kind == BAND_LIMITS.index("stft_hard"), stft_hard_lowpass(x, cutoff), x)
    response = first * jnp.where(second_resample, resample, 1.0)
    return filter_response(x, response, fft_size(x.shape[-1]))


def band_limit(x, kind, cutoff, order, second_resample=False):
    """Band limit ``(samples,)`` with filter ``kind`` (index into
    :data:`BAND_LIMITS`), optionally followed by a second "stft" pass. All
    arguments but ``x`` may be traced."""
    responses = band_limit_responses(kind, cutoff, order, fft_size(x.shape[-1]))
    return apply_band_limit(x, kind, cutoff, responses, second_resample)

"""Degradations for general speech restoration (GSR) training, on device.

Every effect is a pure JAX function of arrays: a signal ``(samples,)`` float32
at 44.1 kHz and its parameters (traced values, so one compiled program serves
every draw); batch with ``jax.vmap``. The GSR pipeline draws the parameters
from a PRNG key (:func:`sample_gsr`) and applies them (:func:`apply_gsr`), with
the original's probabilities and ranges as defaults (:func:`gsr_config`).

From ``docs/voicefixer.md``, "Degradation simulation", read from the
training repository (``voicefixer_main``: ``tools/dsp/lowpass.py``,
``dataloaders/augmentation``, ``dm_sr_rand_sr_order.py``):

- band limit, always: cut-off U[750, 22050] Hz, order U{2..9}, one of six
  filters with equal probability: Butterworth, Chebyshev I (0.1 dB ripple),
  elliptic (0.1 dB / 60 dB) and Bessel (``norm="phase"``) low-passes applied
  forward and backward (``sosfiltfilt``); "stft", resampling down to twice the
  cut-off and back (``resample_poly``); "stft_hard", zeroing STFT bins above
  the cut-off (2048/441 STFT). Speech gets a second "stft" pass with
  probability 0.5; noise is band-limited with probability 0.5 (same draw), and
  then gets the second pass with probability 1/3.
- off by default (defined in the original, off in the paper's
  configuration): high-pass U[500, 2000] Hz, bass/treble shelves, Freeverb,
  fade, quantisation to 4-10 bits.
- before that, on the speech: a sox-style two-pole low-pass (p 0.25, cut-off
  U[4000, 22000] Hz), clipping at ``peak / U[1, 11]`` (p 0.2), and
  reverberation by a room impulse response (p 0.3; full convolution, the first
  ``len(x)`` samples kept, rescaled to a 0.98 peak when the peak exceeds 0.99).
- noise at an SNR of U[-5, 40] dB with the original's level matching (noise
  peak-normalised, then given the speech's mean absolute level when that is
  above 0.02, then divided by ``10 ** (snr / 20)``); then everything is
  normalised by the joint peak and scaled by U[0.3, 1].

Design: on an accelerator a recursive filter over 132 300 samples is a long
sequential loop, so filters run in the frequency domain. A forward-backward
filter has the zero-phase response ``|H|^2``; through the bilinear transform
``|H(e^jw)| = |H_a(j tan(w/2) / tan(pi Wn/2))|`` for the analog prototype
``H_a`` (scipy's ``buttap``/``cheb1ap``/``ellipap``/``besselap``, tabulated at
import), so each draw needs only its prototype's poles and zeros. Signals are
zero-padded by half a second so the filters' tails do not wrap around; the FFT
lengths are the fast ones of the platform being compiled for (powers of two on
TPU, :mod:`vf_jax.backends`), which changes nothing but rounding. Differences from the original, by design: the signal ends see zeros
rather than ``sosfiltfilt``'s odd extension; the resampler's aliasing of its
stop-band residue (below -50 dB) is not reproduced.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
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


# ------------------------------------------------------------ effects ---

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


# ------------------------------------------------------- GSR pipeline ---

def gsr_config() -> ml_collections.ConfigDict:
    """The original's probabilities and ranges (``docs/voicefixer.md``,
    "Degradation simulation"); ranges are ``[low, high)`` uniform draws."""
    c = ml_collections.ConfigDict()
    c.speech_lowpass = dict(prob=0.25, cutoff=(4000.0, 22000.0))
    c.clip = dict(prob=0.2, ratio=(1.0, 11.0))
    c.reverb = dict(prob=0.3)
    c.band_limit = dict(prob=1.0, cutoff=(750.0, 22050.0), order=(MIN_ORDER, MAX_ORDER + 1),
                        kind_weights=(1.0,) * len(BAND_LIMITS),
                        speech_second_resample=0.5, noise_prob=0.5,
                        noise_second_resample=1 / 3)
    c.noise = dict(prob=1.0, snr_db=(-5.0, 40.0), level="mean_abs")
    c.gain = (0.3, 1.0)
    # Defined in the original but off in the paper's configuration.
    c.highpass = dict(prob=0.0, cutoff=(500.0, 2000.0))
    c.treble = dict(prob=0.0, gain_db=(-10.0, 10.0), freq=3000.0)
    c.bass = dict(prob=0.0, gain_db=(-10.0, 10.0), freq=100.0)
    c.fade = dict(prob=0.0, fade_in=(0.0, 0.3), fade_out=(0.0, 0.3))
    # The training repository gives no ranges for these; ours, in sox's terms / 100.
    c.freeverb = dict(prob=0.0, reverberance=(0.2, 1.0), damping=(0.0, 1.0),
                      room_scale=(0.2, 1.0), wet=(0.2, 0.8))
    c.quantise = dict(prob=0.0, bits=(4, 11))
    return c


def preset(name: str) -> ml_collections.ConfigDict:
    """``gsr`` (everything), or one degradation alone: ``denoise`` (noise),
    ``declip`` (clipping), ``sr`` (band limit), ``derev`` (reverberation)."""
    c = gsr_config()
    if name == "gsr":
        return c
    if name not in ("denoise", "declip", "sr", "derev"):
        raise ValueError(f"unknown preset {name!r}")
    c.speech_lowpass.prob = 0.0
    c.clip.prob = 1.0 if name == "declip" else 0.0
    c.reverb.prob = 1.0 if name == "derev" else 0.0
    c.band_limit.prob = 1.0 if name == "sr" else 0.0
    c.band_limit.speech_second_resample = c.band_limit.speech_second_resample if name == "sr" else 0.0
    c.noise.prob = 1.0 if name == "denoise" else 0.0
    return c


def sample_gsr(key, config: ml_collections.ConfigDict) -> dict:
    """Draw one example's degradation parameters: flags (``bool``) saying
    which effects apply and their values. ``jax.vmap`` over keys for a batch."""
    names = ("speech_lowpass", "clip", "reverb", "band_limit", "noise", "highpass",
             "treble", "bass", "fade", "quantise", "freeverb")
    keys = dict(zip(names + ("params",), jax.random.split(key, len(names) + 1)))
    p = {f"{n}_on": jax.random.uniform(keys[n]) < getattr(config, n).prob for n in names}
    k = iter(jax.random.split(keys["params"], 20))
    u = lambda rng: jax.random.uniform(next(k), minval=rng[0], maxval=rng[1])
    bl = config.band_limit
    p["speech_lowpass_cutoff"] = u(config.speech_lowpass.cutoff)
    p["clip_ratio"] = u(config.clip.ratio)
    p["cutoff"] = u(bl.cutoff)
    p["order"] = jax.random.randint(next(k), (), bl.order[0], bl.order[1])
    weights = jnp.asarray(bl.kind_weights, jnp.float32)
    p["kind"] = jax.random.choice(next(k), len(BAND_LIMITS), p=weights / jnp.sum(weights))
    p["speech_second_resample"] = jax.random.uniform(next(k)) < bl.speech_second_resample
    p["noise_band_limit"] = p["band_limit_on"] & (jax.random.uniform(next(k)) < bl.noise_prob)
    p["noise_second_resample"] = jax.random.uniform(next(k)) < bl.noise_second_resample
    p["snr_db"] = u(config.noise.snr_db)
    p["gain"] = u(config.gain)
    p["highpass_cutoff"] = u(config.highpass.cutoff)
    p["treble_gain_db"] = u(config.treble.gain_db)
    p["bass_gain_db"] = u(config.bass.gain_db)
    p["fade_in"] = u(config.fade.fade_in)
    p["fade_out"] = u(config.fade.fade_out)
    for name in ("reverberance", "damping", "room_scale", "wet"):
        p[f"freeverb_{name}"] = u(getattr(config.freeverb, name))
    p["bits"] = jax.random.randint(next(k), (), config.quantise.bits[0], config.quantise.bits[1])
    return p


def apply_gsr(params: dict, speech, noise, rir, config: ml_collections.ConfigDict):
    """Degrade one example: ``speech``, ``noise`` ``(samples,)`` and ``rir``
    ``(rir_samples,)`` -> ``(degraded, target)``, both ``(samples,)``: the
    degraded input and the clean speech at the same level."""
    p = params

    def maybe(name, fn, x):
        """``fn(x)`` where the draw says so; nothing is computed for an effect
        the config makes impossible, no selection for a certain one."""
        prob = getattr(config, name).prob
        if prob == 0.0:
            return x
        return fn(x) if prob == 1.0 else jnp.where(p[f"{name}_on"], fn(x), x)

    x = speech
    x = maybe("fade", lambda v: fade(v, p["fade_in"], p["fade_out"]), x)
    x = maybe("speech_lowpass", lambda v: apply_biquad(v, "lowpass", p["speech_lowpass_cutoff"]), x)
    x = maybe("highpass", lambda v: apply_biquad(v, "highpass", p["highpass_cutoff"]), x)
    x = maybe("treble", lambda v: apply_biquad(v, "treble", config.treble.freq,
                                               p["treble_gain_db"]), x)
    x = maybe("bass", lambda v: apply_biquad(v, "bass", config.bass.freq, p["bass_gain_db"]), x)
    x = maybe("clip", lambda v: clip(v, p["clip_ratio"]), x)
    x = maybe("reverb", lambda v: reverberate(v, rir), x)
    x = maybe("freeverb", lambda v: freeverb(v, p["freeverb_reverberance"],
                                             p["freeverb_damping"], p["freeverb_room_scale"],
                                             p["freeverb_wet"]), x)
    x = maybe("quantise", lambda v: quantise(v, p["bits"]), x)
    n = noise
    if config.band_limit.prob > 0:
        responses = band_limit_responses(p["kind"], p["cutoff"], p["order"],
                                         fft_size(x.shape[-1]))
        x = maybe("band_limit", lambda v: apply_band_limit(
            v, p["kind"], p["cutoff"], responses, p["speech_second_resample"]), x)
        if config.band_limit.noise_prob > 0 and config.noise.prob > 0:
            n = jnp.where(p["noise_band_limit"], apply_band_limit(
                n, p["kind"], p["cutoff"], responses, p["noise_second_resample"]), n)

    # The original puts clean and degraded speech on a common peak first.
    common = jnp.maximum(jnp.maximum(peak(speech), peak(x)), 1e-12)
    target, x = speech / common, x / common
    n = match_noise(x, n, p["snr_db"], config.noise.level) * p["noise_on"]
    noisy = x + n
    common = jnp.maximum(jnp.maximum(jnp.maximum(peak(noisy), peak(x)), peak(n)), peak(target))
    scale = p["gain"] / jnp.maximum(common, 1e-12)
    return noisy * scale, target * scale


def degrade_batch(keys, speech, noise, rir, config: ml_collections.ConfigDict):
    """One draw per example: ``keys (B, 2), speech (B, L), noise (B, L), rir
    (B, R)`` -> ``(degraded, target)``, each ``(B, L)``."""
    one = lambda k, s, n, r: apply_gsr(sample_gsr(k, config), s, n, r, config)
    return jax.vmap(one)(keys, speech, noise, rir)


def gsr_degrader(config: ml_collections.ConfigDict | None = None):
    """:func:`degrade_batch` jitted for ``config`` (default :func:`gsr_config`)."""
    config = gsr_config() if config is None else config
    return jax.jit(lambda keys, speech, noise, rir: degrade_batch(keys, speech, noise, rir,
                                                                  config))

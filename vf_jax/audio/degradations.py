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

The effects are :mod:`vf_jax.audio.effects`; the filters they use,
:mod:`vf_jax.audio.filters`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from vf_jax.audio.effects import (apply_band_limit, band_limit_responses, clip, fade, freeverb,
                                  match_noise, peak, quantise, reverberate)
from vf_jax.audio.filters import BAND_LIMITS, MAX_ORDER, MIN_ORDER, apply_biquad, fft_size

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
    if name != "sr":
        c.band_limit.speech_second_resample = 0.0
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

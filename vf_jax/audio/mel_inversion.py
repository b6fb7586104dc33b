"""From a mel spectrogram back to sound without a vocoder (Griffin-Lim).

For listening to what an analysis network restores when no trained vocoder is
at hand (training summaries, the demo's fallback). It sounds phasey and thin:
a check of the mel, not VoiceFixer's output.

Both steps run on device (jnp, jittable):

- linear magnitudes from the mel (``mel = |STFT| @ fb``, :mod:`vf_jax.audio.mel`) by
  non-negative least squares: the pseudo-inverse clipped at zero, then
  multiplicative updates (Lee and Seung), which keep every bin non-negative;
- Griffin-Lim with momentum ("fast Griffin-Lim", Perraudin et al. 2013), in the
  update order of ``librosa.griffinlim``, with the front end's STFT (Hann,
  centred, reflect padding, :mod:`vf_jax.audio.stft`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib


def magnitude_from_mel(mel, front_end: mel_lib.FrontEnd, n_iter: int = 100):
    """Linear mel magnitudes ``(..., frames, mels)`` -> non-negative STFT
    magnitudes ``(..., frames, n_freq)`` whose mel matches them."""
    fb = front_end.filterbank().astype(np.float64)              # (n_freq, mels)
    fb_pinv = jnp.asarray(np.linalg.pinv(fb), jnp.float32)      # (mels, n_freq)
    fb = jnp.asarray(fb, jnp.float32)
    mel = jnp.asarray(mel, jnp.float32)
    numerator = mel @ fb.T                                       # A^T b, per frame
    gram = fb @ fb.T                                             # A^T A, (n_freq, n_freq)
    start = jnp.maximum(mel @ fb_pinv, 1e-6 * jnp.max(mel, axis=(-2, -1), keepdims=True) + 1e-12)

    def update(_, mag):
        return mag * numerator / (mag @ gram + 1e-12)
    return jax.lax.fori_loop(0, n_iter, update, start)


def griffin_lim_phase(magnitude, front_end: mel_lib.FrontEnd, length: int,
                      n_iter: int = 32, momentum: float = 0.99):
    """STFT magnitudes ``(..., frames, n_freq)`` -> waveform ``(..., length)``.

    Starts from zero phase (``librosa.griffinlim(init=None)``).
    """
    n_fft, hop = front_end.n_fft, front_end.hop
    frames = magnitude.shape[-2]
    tiny = jnp.finfo(jnp.float32).tiny
    to_wave = lambda spec: stft_lib.istft(spec, hop, length, n_fft=n_fft)
    to_spec = lambda wav: stft_lib.stft(wav, n_fft, hop, n_frames=frames)

    def iteration(carry, _):
        spec, previous = carry
        rebuilt = to_spec(to_wave(spec))
        angles = rebuilt - (momentum / (1.0 + momentum)) * previous
        angles = angles / (jnp.abs(angles) + tiny)
        return (angles * magnitude, rebuilt), None

    start = magnitude.astype(jnp.complex64)
    # The first iteration has no previous estimate: momentum against zero.
    (spec, _), _ = jax.lax.scan(iteration, (start, jnp.zeros_like(start)), None,
                                length=n_iter)
    return to_wave(spec)


@functools.partial(jax.jit, static_argnames=("front_end", "length", "n_iter"))
def griffin_lim(log_mel, front_end: mel_lib.FrontEnd, length: int, n_iter: int = 32):
    """Restored log10 mel ``(..., frames, mels)`` -> waveform ``(..., length)``
    at the front end's rate, peak scaled down to 0.99 when above it."""
    magnitude = magnitude_from_mel(mel_lib.from_log(log_mel), front_end)
    wav = griffin_lim_phase(magnitude, front_end, length, n_iter)
    peak = jnp.max(jnp.abs(wav), axis=-1, keepdims=True)
    return wav * jnp.minimum(1.0, 0.99 / jnp.maximum(peak, 1e-12))

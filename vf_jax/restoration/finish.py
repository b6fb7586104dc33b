"""The last touches on restored audio: the original's peak rule, the mix with
the input (``strength``) and the loudness rule."""

from __future__ import annotations

import numpy as np

from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError

LOUDNESS = ("peak", "input")


def peak_rule(x: np.ndarray) -> np.ndarray:
    """The original's peak handling: divide by the peak only when it exceeds 1."""
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 1.0 else x


def check_finish(strength: float, loudness: str) -> None:
    """:func:`finish`'s settings, checked before any work."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must be between 0 and 1, got {strength}")
    if loudness not in LOUDNESS:
        raise UserError(f"loudness must be one of {LOUDNESS}, got {loudness!r}")


def finish(restored: np.ndarray, original: np.ndarray, strength: float = 1.0,
           loudness: str = "peak") -> np.ndarray:
    """The restored audio mixed with the input and levelled, both
    ``(samples, channels)`` at 44.1 kHz and time-aligned.

    ``strength`` (0-1): ``strength * restored + (1 - strength) * input``; 1
    is the restoration alone. ``loudness``: ``peak`` keeps the original's
    peak rule; ``input`` scales the result to the input's integrated loudness
    (ITU-R BS.1770, :mod:`pyloudnorm`; inputs shorter than its 0.4 s gate keep
    the peak rule), then the peak rule. With the defaults the restoration is
    returned unchanged.
    """
    check_finish(strength, loudness)
    if strength == 1.0 and loudness == "peak":
        return restored
    out = restored.astype(np.float64)
    if strength < 1.0:
        out = strength * out + (1.0 - strength) * original.astype(np.float64)
    if loudness == "input" and original.shape[0] >= round(0.4 * SAMPLE_RATE):
        import pyloudnorm
        meter = pyloudnorm.Meter(SAMPLE_RATE)
        target, now = meter.integrated_loudness(original), meter.integrated_loudness(out)
        if np.isfinite(target) and np.isfinite(now):
            out = out * 10.0 ** ((target - now) / 20.0)
    return peak_rule(out).astype(np.float32)

"""Aligning a degraded recording with its clean partner.

Real pairs (a tape and its remaster, a phone call and the studio copy) rarely
start on the same sample: a constant offset of a few milliseconds to a second
is usual. :func:`find_offset` finds it as the lag of the largest normalised
cross-correlation within a limit; :func:`align_pair` removes it and checks that
what is left is one recording of the same speech (lengths agree, the
correlation is high enough), else says why not.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

# A pair whose best normalised correlation is below this is not the same
# recording (unrelated speech correlates at about 0.05; speech in noise at 0 dB
# SNR, band-limited to a telephone's band or reverberant, well above 0.3).
MIN_CORRELATION = 0.2


class Unaligned(ValueError):
    """A pair that cannot be aligned; the message says why."""


def find_offset(degraded: np.ndarray, clean: np.ndarray, max_lag: int) -> tuple[int, float]:
    """``(lag, correlation)``: ``degraded[n + lag]`` best matches ``clean[n]``
    for ``|lag| <= max_lag`` samples; ``correlation`` is the normalised
    cross-correlation there, in [-1, 1] (negative: inverted polarity, still
    aligned). Inputs ``(samples,)`` float."""
    d = np.asarray(degraded, np.float64)
    c = np.asarray(clean, np.float64)
    norm = np.linalg.norm(d) * np.linalg.norm(c)
    if norm == 0.0:
        return 0, 0.0
    full = scipy.signal.correlate(d, c, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(d), len(c), mode="full")
    inside = np.abs(lags) <= max_lag
    full, lags = full[inside], lags[inside]
    best = int(np.argmax(np.abs(full)))
    return int(lags[best]), float(full[best] / norm)


def align_pair(degraded: np.ndarray, clean: np.ndarray, sample_rate: int,
               max_offset_seconds: float = 0.5, min_correlation: float = MIN_CORRELATION):
    """``(degraded, clean, lag)`` cut to their common stretch after removing
    the offset (``lag`` samples, as :func:`find_offset`); raises
    :class:`Unaligned` when the lengths differ by more than the offset limit,
    or the best correlation within it is below ``min_correlation``."""
    max_lag = int(round(max_offset_seconds * sample_rate))
    gap = abs(len(degraded) - len(clean))
    if gap > max_lag:
        raise Unaligned(f"lengths differ by {gap / sample_rate:.2f} s (degraded "
                        f"{len(degraded) / sample_rate:.2f} s, clean {len(clean) / sample_rate:.2f}"
                        f" s; the limit is {max_offset_seconds:g} s)")
    lag, correlation = find_offset(degraded, clean, max_lag)
    if abs(correlation) < min_correlation:
        raise Unaligned(f"no alignment within {max_offset_seconds:g} s (best correlation "
                        f"{abs(correlation):.2f}, below {min_correlation:g})")
    return (*cut(degraded, clean, lag), lag)


def cut(degraded: np.ndarray, clean: np.ndarray, lag: int):
    """``(degraded, clean)`` without ``lag`` (:func:`find_offset`'s) and cut to
    the shorter: their common stretch."""
    degraded, clean = (degraded[lag:], clean) if lag >= 0 else (degraded, clean[-lag:])
    n = min(len(degraded), len(clean))
    return degraded[:n], clean[:n]

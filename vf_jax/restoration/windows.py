"""Cutting audio into windows and putting the restored windows back together.

Inputs up to the longest window are one window: 30 s (the original processes
30 s segments whole), or less where the ladder's top rung holds less
(:mod:`vf_jax.restoration.buckets`; 15.3 s on the coarse ladder of TPUs and
GPUs). Longer inputs are cut into the fewest equal overlapping windows, hop a
multiple of 441 samples, grown to fill their frame bucket, and cross-faded
with complementary raised-cosine ramps (the original concatenates 30 s pieces
and clicks at the joins).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.restoration.buckets import FRONT_END, HOP, bucket_capacity, frame_bucket, rungs_of
from vf_jax.restoration.finish import peak_rule

MAX_WINDOW_SECONDS = 30.0
OVERLAP_SECONDS = 0.5       # the least overlap of neighbouring windows


def plan_windows(length: int, max_window: int, overlap: int) -> list[tuple[int, int]]:
    """The fewest equal windows ``(start, size)`` covering ``length`` samples,
    each at most ``max_window`` long, neighbours overlapping by at least
    ``overlap``, starts on the 441-sample frame grid."""
    if length <= max_window:
        return [(0, length)]
    n = 2
    while True:
        hop = (length - overlap) // (n * HOP) * HOP
        size = length - (n - 1) * hop
        if size <= max_window and size - hop >= overlap:
            return [(i * hop, size) for i in range(n)]
        n += 1


def fill_bucket(windows, length: int, max_window: int,
                ladder: str = "fine") -> list[tuple[int, int]]:
    """Grow equal windows to the largest size their frame bucket holds: the
    padding would cost the same compute, and longer overlaps hide the seams."""
    size = windows[0][1]
    bucket = frame_bucket(FRONT_END.num_frames(size), ladder)
    largest = min(max_window, bucket_capacity(bucket), length)
    n = len(windows)
    hop = -(-(length - largest) // ((n - 1) * HOP)) * HOP
    grown = length - (n - 1) * hop
    if grown < size or frame_bucket(FRONT_END.num_frames(grown), ladder) != bucket:
        return windows
    return [(i * hop, grown) for i in range(n)]


def longest_window(max_window: int, ladder: str = "fine") -> int:
    """``max_window`` samples, or fewer where the ladder's top rung holds fewer."""
    return min(max_window, bucket_capacity(rungs_of(ladder)[-1]))


def window_plan(length: int, max_window: int, overlap: int,
                ladder: str = "fine") -> list[tuple[int, int]]:
    """``(start, size)`` of the windows ``length`` samples are restored in
    (at most ``max_window`` each, which the ladder's top rung must hold:
    :func:`longest_window`): :func:`plan_windows`, grown by
    :func:`fill_bucket` when there are several."""
    windows = plan_windows(length, max_window, overlap)
    return fill_bucket(windows, length, max_window, ladder) if len(windows) > 1 else windows


def crossfade_weights(windows, length: int, axis_scale: int = 1) -> list[np.ndarray]:
    """Per-window weights summing to one: raised-cosine ramps over each overlap.

    ``axis_scale`` converts sample positions to another grid (441 for frames).
    """
    weights = []
    for i, (start, size) in enumerate(windows):
        s, n = start // axis_scale, -(-size // axis_scale)
        w = np.ones(n, np.float64)
        if i > 0:                     # fade in over the overlap with the previous
            prev_start, prev_size = windows[i - 1]
            ov = (prev_start + prev_size) // axis_scale - s
            w[:ov] = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        if i + 1 < len(windows):      # fade out over the overlap with the next
            ov = (start + size) // axis_scale - windows[i + 1][0] // axis_scale
            w[n - ov:] = np.cos(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        weights.append(w)
    return weights


@dataclasses.dataclass
class Restoration:
    """Restored audio ``(samples, channels)`` at 44.1 kHz and the restored
    log10 mel ``(channels, frames, 128)``."""
    audio: np.ndarray
    log_mel: np.ndarray
    sample_rate: int = SAMPLE_RATE


def assemble(windows, length: int, restored) -> Restoration:
    """The restored windows ``[(waveform (channels, size), log mel (channels,
    frames, 128))]`` of ``windows`` put together: cross-faded, then the
    original's peak rule (divide by the peak only when it exceeds 1)."""
    channels = restored[0][0].shape[0]
    out = np.zeros((length, channels), np.float64)
    total_frames = 1 + length // HOP
    mel_out = np.zeros((channels, total_frames, 128), np.float64)
    if len(windows) == 1:
        out[:] = restored[0][0].T
        mel_out[:] = restored[0][1]
    else:
        fades = crossfade_weights(windows, length)
        mel_fades = crossfade_weights(windows, length, HOP)
        for i, ((start, size), (wav, log_mel)) in enumerate(zip(windows, restored)):
            out[start:start + size] += wav.T * fades[i][:, None]
            f0 = start // HOP
            n = min(log_mel.shape[1], total_frames - f0, len(mel_fades[i]))
            mel_out[:, f0:f0 + n] += log_mel[:, :n] * mel_fades[i][None, :n, None]
    return Restoration(peak_rule(out).astype(np.float32), mel_out.astype(np.float32))

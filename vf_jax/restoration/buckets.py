"""The frame-bucket ladder: the static frame counts the networks are compiled for.

A window is zero-padded to the smallest bucket that holds it and the networks
mask everything past its true end (``vf_jax.models.masks``), so results equal
the unpadded computation and a folder of files of any lengths compiles at
most ``len(FRAME_BUCKETS)`` shapes.
"""

from __future__ import annotations

from vf_jax.audio import mel as mel_lib
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.models.resunet import padded_frames

FRONT_END = mel_lib.FRONT_ENDS[SAMPLE_RATE]
HOP = FRONT_END.hop


def bucket_ladder(first: int = 128, last: int = 3008, growth: float = 1.1) -> tuple[int, ...]:
    """Multiples of 64 growing by about 10 % (so padding wastes at most ~10 %
    of the compute), up to the bucket of a 30 s window with the vocoder's
    tail (3008)."""
    buckets = [first]
    while buckets[-1] < last:
        nxt = max(buckets[-1] + 64, round(buckets[-1] * growth / 64) * 64)
        buckets.append(last if nxt * 1.05 >= last else nxt)
    return tuple(buckets)


FRAME_BUCKETS = bucket_ladder()


def frame_bucket(frames: int) -> int:
    """Smallest bucket holding ``frames`` plus the UNet's and vocoder's padding."""
    need = max(padded_frames(frames), frames + 5)
    for b in FRAME_BUCKETS:
        if b >= need:
            return b
    return padded_frames(need)


def row_shape(samples: int) -> tuple[int, int]:
    """``(frames, bucket)`` of a window of ``samples`` at 44.1 kHz: its true
    frame count and the bucket it is padded to (``bucket * HOP`` samples)."""
    frames = FRONT_END.num_frames(samples)
    return frames, frame_bucket(frames)

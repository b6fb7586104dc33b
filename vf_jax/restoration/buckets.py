"""Frame-bucket ladders: the static frame counts the networks are compiled for.

A window is zero-padded to the smallest bucket of a ladder that holds it and
the networks mask everything past its true end (``vf_jax.models.masks``), so
results equal the unpadded computation and a folder of files of any lengths
compiles at most one program per rung. Two ladders, chosen per backend
(:data:`PLATFORM_LADDERS`, measured in ``benchmarks/corpus_restore.py``):

- ``fine``: 26 rungs from 128 frames (1.3 s) to a 30 s window, about 10 %
  apart: little padding, many programs. On a CPU a program compiles in
  seconds (some 4 s each for a folder of short files) and, over a corpus,
  computing dominates, so padding is what to save. (For a small folder
  compiling is a third of a fresh process's time: ``benchmarks/README.md``,
  "A folder of short files"; a CPU ladder weighing that is still to come.)
- ``coarse``: three rungs, rows of 5.8, 10.9 and 15.4 s (the longest window
  they hold: 15.3 s). On a TPU each program takes minutes to compile whatever
  its length, and computing a folder is cheap next to that: for files of
  1-15 s (the reference corpus, :func:`vf_jax.restoration.plan.reference_corpus`:
  uniform lengths) it computes about 32 % more audio than the files hold, and
  cuts none of them. Longer files are cut into overlapping windows of the top
  rung (:mod:`vf_jax.restoration.windows`).
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
LADDERS = {"fine": FRAME_BUCKETS, "coarse": (576, 1088, 1536)}
# GPUs take the TPU's ladder until one is measured (benchmarks/README.md).
PLATFORM_LADDERS = {"cpu": "fine", "gpu": "coarse", "tpu": "coarse"}


def ladder_name(name: str | None = None, platform: str | None = None) -> str:
    """``name`` checked, or the ladder of ``platform`` (default: JAX's backend)."""
    if name is None:
        if platform is None:
            import jax
            platform = jax.default_backend()
        return PLATFORM_LADDERS.get(platform, "coarse")
    if name not in LADDERS:
        raise ValueError(f"unknown ladder {name!r}; one of {sorted(LADDERS)}")
    return name


def frame_bucket(frames: int, ladder: str = "fine") -> int:
    """Smallest bucket of ``ladder`` holding ``frames`` plus the UNet's and
    vocoder's padding (past the top rung: the padding alone)."""
    need = max(padded_frames(frames), frames + 5)
    for b in LADDERS[ladder]:
        if b >= need:
            return b
    return padded_frames(need)


def bucket_capacity(bucket: int) -> int:
    """The most samples (44.1 kHz) a window may have to fit ``bucket``."""
    return (bucket - 6) * HOP + HOP - 1


def row_shape(samples: int, ladder: str = "fine") -> tuple[int, int]:
    """``(frames, bucket)`` of a window of ``samples`` at 44.1 kHz: its true
    frame count and the bucket it is padded to (``bucket * HOP`` samples)."""
    frames = FRONT_END.num_frames(samples)
    return frames, frame_bucket(frames, ladder)

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


def ladder_name(name=None, platform: str | None = None):
    """``name`` checked (a ladder's name or its rungs: increasing multiples of
    64 frames), or the ladder of ``platform`` (default: JAX's backend)."""
    if name is None:
        if platform is None:
            import jax
            platform = jax.default_backend()
        return PLATFORM_LADDERS.get(platform, "coarse")
    if isinstance(name, str):
        if name not in LADDERS:
            raise ValueError(f"unknown ladder {name!r}; one of {sorted(LADDERS)}")
        return name
    rungs = tuple(int(b) for b in name)
    if not rungs or any(b <= 0 or b % 64 for b in rungs) or list(rungs) != sorted(set(rungs)):
        raise ValueError(f"a ladder's rungs are increasing multiples of 64 frames, got {name!r}")
    return rungs


def rungs_of(ladder) -> tuple[int, ...]:
    """The frame counts of ``ladder`` (a name of :data:`LADDERS` or its rungs)."""
    return LADDERS[ladder] if isinstance(ladder, str) else tuple(ladder)


def frame_bucket(frames: int, ladder="fine") -> int:
    """Smallest bucket of ``ladder`` (a name or rungs) holding ``frames`` plus
    the UNet's and vocoder's padding (past the top rung: the padding alone)."""
    need = max(padded_frames(frames), frames + 5)
    for b in rungs_of(ladder):
        if b >= need:
            return b
    return padded_frames(need)


# A fresh process on a CPU traces and compiles a rows program in about 4.5 s
# (2 cores: trace 1 s, lowering 0.3 s, XLA 3.3 s) and computes 0.7 s per
# second of a row: one more program costs what about 6.5 s of rows cost
# (benchmarks/README.md, "A folder of short files").
CPU_PROGRAM_COST_SECONDS = 6.5


def cheapest_ladder(needs: list[tuple[int, int]], rows: int = 1,
                    program_cost: float = CPU_PROGRAM_COST_SECONDS,
                    candidates=FRAME_BUCKETS) -> tuple[int, ...]:
    """The rungs of ``candidates`` (the fine ladder's) that restore ``needs``
    (``[(frames a file's rows need, rows), ...]``, :func:`frame_bucket` with
    the fine ladder) at the least modelled cost: ``program_cost`` seconds of
    rows for each program compiled, plus every row's seconds (batches of
    ``rows``, the last one filled). The top candidate is always kept, so
    that windows are cut as with the fine ladder; it compiles only if used.
    Dynamic programming over the needs in order: a rung serves a run of
    consecutive needs."""
    counts: dict[int, int] = {}
    for need, n in needs:
        counts[need] = counts.get(need, 0) + n
    sizes = sorted(counts)
    seconds = lambda b: b * HOP / SAMPLE_RATE
    # best[i]: (cost, rungs) of serving sizes[i:].
    best: list[tuple[float, tuple]] = [(0.0, ())] * (len(sizes) + 1)
    for i in range(len(sizes) - 1, -1, -1):
        options = []
        for j in range(i, len(sizes)):
            rung = next((b for b in candidates if b >= sizes[j]), sizes[j])
            n = sum(counts[s] for s in sizes[i:j + 1])
            cost = program_cost + -(-n // rows) * rows * seconds(rung) + best[j + 1][0]
            options.append((cost, (rung,) + best[j + 1][1]))
        best[i] = min(options)
    return tuple(sorted(set(best[0][1]) | {candidates[-1]}))


def bucket_capacity(bucket: int) -> int:
    """The most samples (44.1 kHz) a window may have to fit ``bucket``."""
    return (bucket - 6) * HOP + HOP - 1


def row_shape(samples: int, ladder="fine") -> tuple[int, int]:
    """``(frames, bucket)`` of a window of ``samples`` at 44.1 kHz: its true
    frame count and the bucket it is padded to (``bucket * HOP`` samples)."""
    frames = FRONT_END.num_frames(samples)
    return frames, frame_bucket(frames, ladder)

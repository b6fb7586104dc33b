"""What restoring a folder will compile and compute, before doing either
(``python -m vf_jax restore -i DIR --plan``).

Every window of every channel of every file is one row of a program of
``rows`` rows padded to a rung of the backend's ladder
(:mod:`vf_jax.restoration.buckets`, :mod:`vf_jax.restoration.batched`):
one program per rung used. For each, the plan gives the files and audio
seconds it takes, the padding (audio computed, counting the bucket's zeros,
window overlaps and the copies that fill a last batch, against the input's
audio; both counted per channel), and for a TPU the compile time and the
compiler's estimate of computing it, from the table the benchmarks record
(``program_costs.json`` beside this module, written by
``benchmarks/corpus_restore.py --tpu --record-costs``; None where none is
recorded). Only file headers are read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.restoration.buckets import (FRONT_END, HOP, cheapest_ladder, frame_bucket, ladder_name,
                                        rungs_of)
from vf_jax.restoration.windows import longest_window, window_plan

COSTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "program_costs.json")
TPU_CHIP = "v5e"       # the chip the recorded TPU costs are for
# The ladder a folder takes by default. On a CPU, "auto": rungs of the fine
# ladder chosen for the folder's lengths (compiling weighed against padding,
# buckets.cheapest_ladder); accelerators compile for minutes whatever the
# shape, so they keep their coarse ladder, which any corpus shares.
FOLDER_LADDERS = {"cpu": "auto", "gpu": "coarse", "tpu": "coarse"}


def read_inputs(paths) -> tuple[list[tuple[int, int]], list[str]]:
    """``[(samples at 44.1 kHz, channels), ...]`` of the readable ``paths``
    from their headers, and the errors of those that cannot be read."""
    from vf_jax.audio import io as audio_io
    from vf_jax.errors import UserError
    inputs, errors = [], []
    for path in paths:
        try:
            samples, rate, channels = audio_io.read_header(path)
        except UserError as e:
            errors.append(str(e))
            continue
        inputs.append((audio_io.resampled_length(samples, rate), channels))
    return inputs, errors


def file_rows(samples: int, channels: int, ladder, max_window: int = 30 * SAMPLE_RATE,
              overlap: int = SAMPLE_RATE // 2) -> tuple[int, int]:
    """``(bucket, rows)`` of a file of ``samples`` (44.1 kHz) and ``channels``
    on ``ladder``: its windows (all in the bucket of the first) times its
    channels, as :class:`vf_jax.restoration.batched.BatchedRestoration` packs them."""
    windows = window_plan(samples, longest_window(max_window, ladder), overlap, ladder)
    return frame_bucket(FRONT_END.num_frames(windows[0][1]), ladder), len(windows) * channels


def folder_ladder(ladder, backend: str):
    """``ladder`` as given, or a folder's default on ``backend`` (:data:`FOLDER_LADDERS`)."""
    return ladder or FOLDER_LADDERS.get(backend, "coarse")


def auto_ladder(inputs: list[tuple[int, int]], rows: int = 1,
                max_window: int = 30 * SAMPLE_RATE, overlap: int = SAMPLE_RATE // 2):
    """The rungs restoring ``inputs`` (``[(samples at 44.1 kHz, channels),
    ...]``) in batches of ``rows`` compiles and computes least
    (:func:`vf_jax.restoration.buckets.cheapest_ladder`); windows are cut as
    with the fine ladder."""
    return cheapest_ladder([file_rows(samples, channels, "fine", max_window, overlap)
                            for samples, channels in inputs], rows)


def resolve_ladder(ladder, inputs: list[tuple[int, int]], *, backend: str, rows: int,
                   max_window: int = 30 * SAMPLE_RATE, overlap: int = SAMPLE_RATE // 2):
    """``ladder`` (a name, rungs, ``"auto"`` or None: :func:`folder_ladder`)
    as a name or rungs for these inputs."""
    ladder = folder_ladder(ladder, backend)
    if ladder == "auto":
        return auto_ladder(inputs, rows, max_window, overlap)
    return ladder_name(ladder)


def reference_corpus(files: int = 2000, shortest: float = 1.0, longest: float = 15.0,
                     seed: int = 0) -> list[tuple[int, int]]:
    """The corpus the ladders are chosen on and the time to result is stated
    for: ``files`` mono files of uniformly random length in ``[shortest,
    longest]`` seconds (2,000 of 1-15 s: about 4.4 hours), as ``(samples at
    44.1 kHz, channels)``."""
    import numpy as np
    seconds = np.random.default_rng(seed).uniform(shortest, longest, files)
    return [(int(s * SAMPLE_RATE), 1) for s in seconds]


@dataclasses.dataclass
class ProgramPlan:
    """One program: ``rows`` rows of ``frames`` frames (``seconds`` each),
    run ``calls`` times for ``files`` files holding ``audio_seconds``."""
    rows: int
    frames: int
    seconds: float
    files: int
    audio_seconds: float
    padding_fraction: float
    compile_seconds: float | None
    estimate_seconds: float | None
    calls: int


def recorded_costs(path: str = COSTS_FILE) -> list[dict]:
    """The benchmarks' records: ``[{"chip", "precision", "mode", "rows",
    "frames", "kind", "compile_seconds", "estimate_seconds" (one call)}, ...]``."""
    try:
        with open(path) as f:
            return json.load(f)["programs"]
    except (OSError, ValueError, KeyError):
        return []


def lookup(costs: list[dict], *, precision: str, mode: int, rows: int, frames: int,
           kind: str) -> dict | None:
    for c in costs:
        if (c["chip"], c["precision"], c["mode"], c["rows"], c["frames"], c["kind"]) == (
                TPU_CHIP, precision, mode, rows, frames, kind):
            return c
    return None


def plan_inputs(inputs: list[tuple[int, int]], *, backend: str, rows: int, devices: int = 1,
                mode: int = 0, precision: str = "float32", kind: str = "released",
                ladder: str | None = None, max_window: int = 30 * SAMPLE_RATE,
                overlap: int = SAMPLE_RATE // 2, costs: list[dict] | None = None) -> dict:
    """The plan of inputs ``[(samples at 44.1 kHz, channels), ...]`` restored on
    ``backend`` (``cpu``, ``gpu``, ``tpu``) in batches of ``rows`` rows over
    ``devices`` devices (the recorded costs are per chip: ``rows / devices``
    rows each). Returns ``{"backend", "ladder", "mode", "precision", "files",
    "audio_seconds", "programs": [ProgramPlan as a dict, ...],
    "padding_fraction", "compile_seconds", "estimate_seconds"}`` (the totals
    None unless every program has a recorded figure)."""
    name = folder_ladder(ladder, backend)
    ladder = resolve_ladder(ladder, inputs, backend=backend, rows=rows, max_window=max_window,
                            overlap=overlap)
    per_bucket: dict[int, dict] = {}
    for samples, channels in inputs:
        bucket, file_rows_ = file_rows(samples, channels, ladder, max_window, overlap)
        entry = per_bucket.setdefault(bucket, {"rows": 0, "files": 0, "audio": 0.0})
        entry["rows"] += file_rows_
        entry["files"] += 1
        entry["audio"] += samples * channels / SAMPLE_RATE
    costs = recorded_costs() if costs is None else costs
    programs = []
    for bucket in sorted(per_bucket):
        entry = per_bucket[bucket]
        calls = math.ceil(entry["rows"] / rows)
        seconds = bucket * HOP / SAMPLE_RATE
        computed = calls * rows * bucket * HOP / SAMPLE_RATE
        cost = (lookup(costs, precision=precision, mode=mode, rows=rows // devices,
                       frames=bucket, kind=kind) if backend == "tpu" else None)
        programs.append(ProgramPlan(
            rows, bucket, round(seconds, 4), entry["files"], round(entry["audio"], 3),
            round(computed / entry["audio"] - 1, 4),
            None if cost is None else cost["compile_seconds"],
            None if cost is None else round(cost["estimate_seconds"] * calls, 4), calls))
    audio = sum(e["audio"] for e in per_bucket.values())
    computed = sum(p.calls * p.rows * p.frames * HOP for p in programs) / SAMPLE_RATE
    total = lambda key: (None if not programs or any(getattr(p, key) is None for p in programs)
                         else round(sum(getattr(p, key) for p in programs), 3))
    return {"backend": backend, "ladder": name if isinstance(name, str) else "rungs",
            "rungs": list(rungs_of(ladder)), "mode": mode, "precision": precision,
            "files": len(inputs), "audio_seconds": round(audio, 3),
            "programs": [dataclasses.asdict(p) for p in programs],
            "padding_fraction": round(computed / audio - 1, 4) if audio else 0.0,
            "compile_seconds": total("compile_seconds"),
            "estimate_seconds": total("estimate_seconds")}


def describe(plan: dict) -> str:
    """:func:`plan_inputs`' result as a table for people."""
    def figure(x, digits=0):
        return "-" if x is None else f"{x:.{digits}f}"
    ladder = plan["ladder"]
    if ladder not in ("fine", "coarse"):
        ladder += " " + ", ".join(str(b) for b in plan["rungs"])
    lines = [f"{plan['files']} file(s), {plan['audio_seconds'] / 3600:.3f} h of audio, on "
             f"{plan['backend']} (ladder {ladder}, mode {plan['mode']}, "
             f"{plan['precision']}): {len(plan['programs'])} program(s)",
             "| rows | frames | seconds | files | audio s | padding | calls | compile s "
             "| estimate s |", "|---|---|---|---|---|---|---|---|---|"]
    for p in plan["programs"]:
        lines.append(f"| {p['rows']} | {p['frames']} | {p['seconds']:.2f} | {p['files']} | "
                     f"{p['audio_seconds']:.1f} | {p['padding_fraction']:.1%} | {p['calls']} | "
                     f"{figure(p['compile_seconds'])} | {figure(p['estimate_seconds'], 1)} |")
    lines.append(f"padding {plan['padding_fraction']:.1%} of the audio; compile "
                 f"{figure(plan['compile_seconds'])} s, compute "
                 f"{figure(plan['estimate_seconds'], 1)} s (- : not recorded for this "
                 "backend and shape"
                 + (f"; TPU figures: one {TPU_CHIP} chip" if plan["backend"] == "tpu" else "")
                 + ")")
    return "\n".join(lines)

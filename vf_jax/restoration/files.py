"""The one loop over audio files of the commands that write audio: ``restore``,
``degrade`` and ``evaluate --input`` (which restores first).

:func:`plan` pairs inputs with outputs (a file, or a folder mirrored as
``.wav`` files) and refuses what would lose data: a missing input, an output
that is an input, existing outputs without ``overwrite``. :func:`run` calls a
job function on each pair under one progress bar; a file that fails with a
:class:`vf_jax.errors.UserError` is reported and skipped, the rest go on, and
the exit status says whether any failed (a single file's error is the
command's error).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from vf_jax.errors import UserError


def output_name(rel: str, ext: str = ".wav") -> str:
    """The output file of input ``rel``: the same name with extension ``ext``."""
    return os.path.splitext(rel)[0] + ext


def plan(inp: str, out: str, overwrite: bool, ext: str = ".wav",
         check_existing: bool = True) -> list[tuple[str, str]]:
    """Pairs ``(input file, output file)``: ``inp`` a file (``out`` a file or a
    folder) or a folder (``out`` a folder mirroring it, files named with
    ``ext``). ``check_existing``: refuse existing outputs unless ``overwrite``
    (a resumable run decides that itself)."""
    if not os.path.exists(inp):
        raise UserError(f"input not found: {inp}")
    if os.path.abspath(inp) == os.path.abspath(out):
        raise UserError("the output path is the input path; choose another output")
    if os.path.isdir(inp):
        from vf_jax.audio.io import find_audio_files
        if os.path.exists(out) and not os.path.isdir(out):
            raise UserError(f"input is a folder, but the output {out} is a file")
        rels = find_audio_files(inp)
        if not rels:
            raise UserError(f"no audio files in {inp}")
        pairs = [(os.path.join(inp, r), os.path.join(out, output_name(r, ext))) for r in rels]
    else:
        if os.path.isdir(out):
            out = os.path.join(out, output_name(os.path.basename(inp), ext))
            if os.path.abspath(inp) == os.path.abspath(out):
                raise UserError("the output path is the input path; choose another output")
        pairs = [(inp, out)]
    inputs = {os.path.abspath(i) for i, _ in pairs}
    clash = [o for _, o in pairs if os.path.abspath(o) in inputs]
    if clash:
        raise UserError(f"output {clash[0]} would overwrite an input file")
    existing = [o for _, o in pairs if os.path.exists(o)] if check_existing else []
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise UserError(f"output exists: {existing[0]}{more} (use --overwrite to replace)")
    return pairs


def audio_info(path: str) -> tuple[float, int, int, int]:
    """``(seconds, frames, sample rate, channels)`` of an audio file from its
    header; zeros when it cannot be read (reading it reports why)."""
    import soundfile as sf
    try:
        info = sf.info(path)
    except Exception:
        return 0.0, 0, 0, 0
    return info.frames / info.samplerate, info.frames, info.samplerate, info.channels


def audio_progress(total_seconds: float, desc: str):
    """A progress bar over seconds of audio, with the throughput and time left."""
    from tqdm import tqdm
    return tqdm(total=round(total_seconds, 1), unit="s", desc=desc, file=sys.stderr,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio "
                                               "[{elapsed}<{remaining}, {rate_fmt}]")


def run(jobs: Sequence, job: Callable, *, desc: str, quiet: bool, summary: Callable,
        failed_prefix: str = "", audio_seconds: float | None = None) -> int:
    """``job(item, advance)`` for each of ``jobs``; returns the exit status
    (1 if any failed). The progress bar counts files, or, with
    ``audio_seconds`` (the total), seconds of audio that ``job`` reports
    through ``advance(seconds)``. Failures (:class:`UserError`) are printed
    as ``skipped: ...`` and counted; with a single job, its error is raised.
    At the end ``summary(done, total)`` is printed (unless ``quiet``), then
    the number of failures."""
    bar = None
    if not quiet:
        from tqdm import tqdm
        if audio_seconds is None:
            bar = tqdm(total=len(jobs), unit="file", desc=desc, file=sys.stderr)
        else:
            bar = audio_progress(audio_seconds, desc)
    advance = (lambda seconds: None) if bar is None else (lambda seconds: bar.update(seconds))
    failures = []
    for item in jobs:
        try:
            job(item, advance)
        except UserError as e:
            failures.append(str(e))
            if len(jobs) > 1:
                (bar.write if bar is not None else print)(f"skipped: {e}", file=sys.stderr)
        if bar is not None and audio_seconds is None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if len(jobs) == 1 and failures:
        raise UserError(failures[0])
    if not quiet:
        print(summary(len(jobs) - len(failures), len(jobs)), file=sys.stderr)
    if failures:
        print(f"{failed_prefix}{len(failures)} file(s) failed", file=sys.stderr)
        return 1
    return 0

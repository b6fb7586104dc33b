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
    return tqdm(total=total_seconds, unit="s", desc=desc, file=sys.stderr,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio "
                                               "[{elapsed}<{remaining}, {rate_fmt}]")


class AudioProgress:
    """Seconds of audio done, file by file, on a bar (none when ``quiet``)
    whose total starts as the headers' durations (``expected``, per file) and
    is corrected to what is really done: a file's length once it is read
    (:meth:`read`), nothing for a file that fails. It never passes its total,
    and a file that ends counts exactly its length, whatever its parts
    reported (rounding, resampling)."""

    def __init__(self, expected, desc: str, quiet: bool = False, count_files: bool = False):
        """``count_files``: the bar counts files (each ``expected`` is 1)."""
        from tqdm import tqdm
        self.expected = [max(0.0, float(s)) for s in expected]
        self.bar = (None if quiet else
                    tqdm(total=len(self.expected), unit="file", desc=desc, file=sys.stderr)
                    if count_files else audio_progress(sum(self.expected), desc))
        self.base, self.length = 0.0, 0.0

    def start(self, index: int) -> None:
        self.length = self.expected[index]
        self.base = self.bar.n if self.bar is not None else 0.0

    def read(self, seconds: float) -> None:
        """The current file turned out ``seconds`` long."""
        if self.bar is not None:
            self.bar.total = max(self.bar.n, self.bar.total + seconds - self.length)
        self.length = seconds

    def __call__(self, seconds: float) -> None:
        """``seconds`` more of the current file done."""
        if self.bar is not None:
            room = self.base + self.length - self.bar.n
            self.bar.update(max(0.0, min(seconds, room)))

    def end(self, done: bool) -> None:
        """The current file finished (``done``) or failed."""
        if self.bar is None:
            return
        if done:
            self.bar.n = self.base + self.length
        else:     # its seconds will never be done: out of the total
            self.bar.total = max(self.base, self.bar.total - self.length)
            self.bar.n = self.base
        self.bar.refresh()

    def write(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(jobs: Sequence, job: Callable, *, desc: str, quiet: bool, summary: Callable,
        failed_prefix: str = "", audio_seconds: Sequence[float] | None = None) -> int:
    """``job(item, advance)`` for each of ``jobs``; returns the exit status
    (1 if any failed). The progress bar counts files, or, with
    ``audio_seconds`` (each job's duration from its header), seconds of audio
    that ``job`` reports through ``advance`` (an :class:`AudioProgress`:
    ``advance(seconds)``, ``advance.read(seconds)``). Failures
    (:class:`UserError`) are printed as ``skipped: ...`` and counted; with a
    single job, its error is raised. At the end ``summary(done, total)`` is
    printed (unless ``quiet``), then the number of failures."""
    progress = (AudioProgress([1.0] * len(jobs), desc, quiet, count_files=True)
                if audio_seconds is None else AudioProgress(audio_seconds, desc, quiet))
    failures = []
    for index, item in enumerate(jobs):
        progress.start(index)
        try:
            job(item, progress)
            progress.end(done=True)
        except UserError as e:
            progress.end(done=False)
            failures.append(str(e))
            if len(jobs) > 1:
                progress.write(f"skipped: {e}")
    progress.close()
    if len(jobs) == 1 and failures:
        raise UserError(failures[0])
    if not quiet:
        print(summary(len(jobs) - len(failures), len(jobs)), file=sys.stderr)
    if failures:
        print(f"{failed_prefix}{len(failures)} file(s) failed", file=sys.stderr)
        return 1
    return 0

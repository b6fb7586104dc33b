"""Restoring what the page is given, without the web framework: limits checked
before the samples are read, each file restored as ``python -m vf_jax restore``
restores it (same reader, restorer, settings and writer, so the same samples),
a spectrogram figure, and a zip for several files."""

from __future__ import annotations

import dataclasses
import os
import re
import time
import zipfile
from typing import Callable

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError
from vf_jax.restoration.finish import check_finish
from vf_jax.restoration.restorer import MODES, Restorer, as_input

PRECISIONS = ("float32", "bf16")
SUBTYPE = "PCM_16"            # restore's default: 16-bit WAV


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one upload may be: its size in MB and its length in seconds."""
    max_upload_mb: float = 200.0
    max_seconds: float = 600.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """The page's controls, as ``restore`` has them."""
    mode: int = 0
    strength: float = 1.0
    loudness: str = "peak"
    precision: str = "float32"

    def check(self) -> "Settings":
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {self.mode}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_finish(self.strength, self.loudness)
        return self


@dataclasses.dataclass
class Result:
    """One file's outcome: ``path`` (the restored WAV) or ``error``."""
    name: str
    path: str | None = None
    seconds: float = 0.0            # the input's duration
    elapsed: float = 0.0            # restoring it, reading and writing included
    channels: int = 0
    error: str | None = None
    figure: str | None = None       # input | restored spectrograms (PNG)


class Restorers:
    """One weights folder, read once per process, and a :class:`Restorer` per
    precision sharing its arrays."""

    def __init__(self, weights: str):
        import jax

        from vf_jax.restoration import weights as weights_lib
        variables, self.meta = weights_lib.load(weights)
        self.variables = jax.device_put(variables)
        self.by_precision: dict[str, Restorer] = {}

    def __call__(self, precision: str) -> Restorer:
        if precision not in self.by_precision:
            self.by_precision[precision] = Restorer(self.variables, self.meta,
                                                    precision=precision)
        return self.by_precision[precision]


def display_name(path: str) -> str:
    """An upload's file name as the user knows it."""
    return os.path.basename(path) or "upload"


def safe_stem(name: str) -> str:
    """``name`` without its extension, as a file name safe on any system."""
    stem = re.sub(r"[^\w.-]+", "_", os.path.splitext(name)[0]).strip("._")
    return stem[:80] or "audio"


def check_upload(path: str, limits: Limits) -> float:
    """The upload's duration in seconds, after checking it exists, is within
    ``limits`` and is audio with samples (from its header); one-line errors."""
    name = display_name(path)
    if not os.path.isfile(path):
        raise UserError(f"{name}: the upload is gone (uploads are deleted when their "
                        "request ends); upload it again")
    size_mb = os.path.getsize(path) / 1e6
    if size_mb > limits.max_upload_mb:
        raise UserError(f"{name} is {size_mb:.1f} MB, over this page's limit of "
                        f"{limits.max_upload_mb:g} MB")
    frames, rate, _ = audio_io.read_header(path)
    seconds = frames / rate
    if seconds > limits.max_seconds:
        raise UserError(f"{name} is {seconds:.1f} s long, over this page's limit of "
                        f"{limits.max_seconds:g} s")
    return seconds


def restore_upload(restorer: Restorer, path: str, settings: Settings, out_dir: str,
                   limits: Limits, progress: Callable[[float], None] | None = None,
                   figure: bool = True) -> Result:
    """Restore the upload ``path`` into ``out_dir/<name>_restored.wav`` (44.1
    kHz, its channels, 16-bit); ``progress(seconds)`` reports seconds of it
    done. A bad upload gives a :class:`Result` with ``error`` set (its message
    names the file, never a server path)."""
    name = display_name(path)
    result = Result(name)
    start = time.perf_counter()
    try:
        result.seconds = check_upload(path, limits)
        audio, rate = audio_io.read_audio(path)
        result.seconds, result.channels = audio.shape[0] / rate, audio.shape[1]
        restored = restorer.restore(
            audio, rate, mode=settings.mode, strength=settings.strength,
            loudness=settings.loudness,
            progress=None if progress is None else lambda n: progress(n / SAMPLE_RATE))
        out = unique_path(out_dir, safe_stem(name) + "_restored.wav")
        audio_io.write_audio(out, restored, SAMPLE_RATE, SUBTYPE)
        result.path = out
    except UserError as e:
        result.error = str(e).replace(path, name)
        return result
    result.elapsed = time.perf_counter() - start
    if figure:
        result.figure = os.path.splitext(result.path)[0] + ".png"
        spectrogram_pair(audio, rate, restored, result.figure)
    return result


def unique_path(folder: str, name: str) -> str:
    """``folder/name``, numbered when taken (two uploads with one name)."""
    stem, ext = os.path.splitext(name)
    path, n = os.path.join(folder, name), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(folder, f"{stem}-{n}{ext}")
    return path


def spectrogram_pair(audio: np.ndarray, rate: int, restored: np.ndarray, path: str) -> None:
    """The input's and the restored audio's log-mel spectrograms side by side
    (first channel), as a PNG at ``path``."""
    from vf_jax.audio.spectrogram_figure import plot_spectrograms
    mono = lambda x: np.asarray(x)[:, 0] if np.ndim(x) == 2 else np.asarray(x)  # noqa: E731
    plot_spectrograms({"input": mono(as_input(audio, rate)), "restored": mono(restored)},
                      path, side_by_side=True, dpi=80)


def zip_results(results: list[Result], path: str) -> str:
    """The restored files of ``results`` in one zip at ``path`` (stored, not
    compressed: WAV barely compresses)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for result in results:
            if result.path:
                archive.write(result.path, os.path.basename(result.path))
    return path


def report(results: list[Result]) -> str:
    """A Markdown table of each file's duration and time taken, or its error."""
    lines = ["| file | duration | time taken | result |", "| --- | --- | --- | --- |"]
    for r in results:
        name = r.name.replace("|", "\\|")
        if r.error:
            lines.append(f"| {name} | | | {r.error.replace('|', '/')} |")
        else:
            lines.append(f"| {name} | {r.seconds:.2f} s | {r.elapsed:.2f} s | "
                         f"restored, {r.channels} channel(s), 44.1 kHz |")
    return "\n".join(lines)

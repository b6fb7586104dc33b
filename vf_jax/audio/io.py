"""Reading, resampling and writing audio, with one-line errors for bad input.

Reads whatever libsndfile reads (wav, flac, ogg, mp3, ...). Writes go to a
temporary file beside the target and are renamed into place, so a failure never
leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import soundfile as sf

from vf_jax.errors import UserError

# The rate of every network, and so of the audio they take and give (44.1 kHz:
# the paper, arXiv 2109.13731). Inputs at other rates are resampled to it.
SAMPLE_RATE = 44100

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif",
                    ".au", ".caf", ".w64", ".rf64", ".opus")


def opened(path: str, read):
    """``read(path)`` for an audio file, its failures as one-line errors:
    missing, a folder, or not audio (libsndfile's reason)."""
    if not os.path.exists(path):
        raise UserError(f"input not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"input is a folder, expected a file: {path}")
    try:
        return read(path)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read {path} as audio: {reason}") from None


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """``(samples, channels)`` float32 in [-1, 1] and the sample rate."""
    data, sr = opened(path, lambda p: sf.read(p, dtype="float32", always_2d=True))
    if data.shape[0] == 0:
        raise UserError(f"{path} has no samples")
    if not np.all(np.isfinite(data)):
        raise UserError(f"{path} contains NaN or infinite samples")
    return data, int(sr)


def read_header(path: str) -> tuple[int, int, int]:
    """``(samples, sample rate, channels)`` of an audio file from its header
    alone, with :func:`read_audio`'s errors for what is missing, not audio
    or empty (NaN samples show only when the samples are read)."""
    info = opened(path, sf.info)
    if info.frames <= 0 or info.samplerate <= 0:
        raise UserError(f"{path} has no samples")
    return int(info.frames), int(info.samplerate), int(info.channels)


def resampled_length(samples: int, sr_in: int, sr_out: int = SAMPLE_RATE) -> int:
    """Samples :func:`resample` gives for ``samples`` at ``sr_in``."""
    return samples if sr_in == sr_out else round(samples * sr_out / sr_in)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 (clipped, rounded)."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def from_pcm16(x: np.ndarray) -> np.ndarray:
    """int16 audio as float32 in [-1, 1)."""
    return np.asarray(x, np.float32) / np.float32(32768.0)


def resample(data: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling of ``(samples, channels)``."""
    if sr_in == sr_out:
        return data
    import soxr
    out = soxr.resample(data, sr_in, sr_out, quality="VHQ")
    return np.asarray(out, np.float32).reshape(-1, data.shape[1])


def write_audio(path: str, data: np.ndarray, sr: int, subtype: str = "PCM_16",
                temporary_prefix: str = ".vf_jax-") -> None:
    """Write ``(samples,)`` or ``(samples, channels)`` atomically: to a
    temporary file named ``temporary_prefix...`` beside ``path``, then renamed."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    ext = os.path.splitext(path)[1] or ".wav"
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix, suffix=ext, dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    try:
        fmt = ext[1:].upper() if ext[1:].upper() in sf.available_formats() else "WAV"
        if not sf.check_format(fmt, subtype):     # e.g. PCM_16 asked of ogg or mp3
            subtype = sf.default_subtype(fmt)
        sf.write(tmp, data, sr, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if not isinstance(e, Exception):
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot write {path}: {reason}") from None


def find_audio_files(folder: str) -> list[str]:
    """Audio files under ``folder`` (by extension), relative paths, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return found


def pair_audio_files(first: str, second: str):
    """Audio files of two folders paired by relative path without the extension
    (``a/b.flac`` with ``a/b.wav``): ``(pairs, only_first, only_second)``,
    ``pairs`` as ``(key, first path, second path)``, each list sorted by key."""
    def index(root):
        files = {}
        for rel in find_audio_files(root):
            files.setdefault(os.path.splitext(rel)[0], os.path.join(root, rel))
        return files
    a, b = index(first), index(second)
    keys = sorted(set(a) & set(b))
    return ([(k, a[k], b[k]) for k in keys], sorted(set(a) - set(b)), sorted(set(b) - set(a)))

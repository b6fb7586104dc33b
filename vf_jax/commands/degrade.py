"""``python -m vf_jax degrade``: degraded test material from clean files.

Each file is resampled to 44.1 kHz and degraded on device by
:mod:`vf_jax.audio.degradations` with a preset (``gsr``, or one of ``denoise``,
``declip``, ``sr``, ``derev`` alone). Noise and room impulse responses come
from ``--noise`` / ``--rir`` (a file, or a folder to draw from) or, without
them, from :mod:`vf_jax.audio.synthetic`. The same ``--seed`` gives the same output;
each file gets its own draw (the seed and the file's relative path).
Channels are degraded alike (same draw), each with its own noise.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio import synthetic
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError

HELP = "degrade clean speech (test material)"


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", required=True, help="clean audio file or folder")
    p.add_argument("-o", "--output", required=True,
                   help="output file, or folder (the input tree mirrored, .wav files)")
    p.add_argument("--preset", default="gsr", choices=("gsr", "denoise", "declip", "sr", "derev"),
                   help="gsr: every degradation as in training; or one alone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", default=None,
                   help="noise file or folder (default: synthetic pink noise)")
    p.add_argument("--rir", default=None,
                   help="room impulse response file or folder (default: synthetic)")
    p.add_argument("--target", default=None,
                   help="also write the clean target at the degraded level (file or folder)")
    p.add_argument("--subtype", default="PCM_16", help="output subtype")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args) -> int:
    from vf_jax.restoration import files
    pairs = files.plan(args.input, args.output, args.overwrite)
    jobs = []
    for src, dst in pairs:
        rel = (os.path.relpath(src, args.input) if os.path.isdir(args.input)
               else os.path.basename(src))
        target = None
        if args.target is not None:
            target = (os.path.join(args.target, files.output_name(rel))
                      if os.path.isdir(args.input)
                      else args.target)
            if os.path.exists(target) and not args.overwrite:
                raise UserError(f"output exists: {target} (use --overwrite to replace)")
            if os.path.abspath(target) in {os.path.abspath(s) for s, _ in pairs}:
                raise UserError(f"target {target} would overwrite an input file")
        jobs.append((src, rel, dst, target))
    from vf_jax.compilation import enable_compilation_cache
    enable_compilation_cache()
    return run(jobs, args.preset, args.seed, args.noise, args.rir,
                             args.subtype, args.quiet, args.output)


def _file_seed(seed: int, rel: str) -> int:
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _sources(path: str | None) -> list[str]:
    if path is None:
        return []
    if os.path.isdir(path):
        files = [os.path.join(path, r) for r in audio_io.find_audio_files(path)]
        if not files:
            raise UserError(f"no audio files in {path}")
        return files
    if not os.path.isfile(path):
        raise UserError(f"not found: {path}")
    return [path]


def _read_mono(path: str) -> np.ndarray:
    data, sr = audio_io.read_audio(path)
    return audio_io.resample(data, sr, SAMPLE_RATE).mean(axis=1)


def _fit(noise: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of ``samples`` from ``noise``, looped if shorter."""
    if len(noise) < samples:
        noise = np.tile(noise, -(-samples // len(noise)))
    start = int(rng.integers(0, len(noise) - samples + 1))
    return noise[start:start + samples]


class FileDegrader:
    """Degrades whole files with one preset; compiled once per length."""

    def __init__(self, preset: str = "gsr", noise: str | None = None, rir: str | None = None):
        from vf_jax.audio import degradations
        try:
            self.config = degradations.preset(preset)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.noise_files, self.rir_files = _sources(noise), _sources(rir)
        self.degrade = degradations.gsr_degrader(self.config)

    def __call__(self, audio: np.ndarray, sample_rate: int, seed: int):
        """``(samples, channels)`` at any rate -> ``(degraded, target)`` at
        44.1 kHz, each ``(samples, channels)``."""
        import jax
        audio = audio_io.resample(np.asarray(audio, np.float32), sample_rate, SAMPLE_RATE)
        samples, channels = audio.shape
        rng = np.random.default_rng(seed)
        noise = np.stack([
            _fit(_read_mono(self.noise_files[rng.integers(len(self.noise_files))]), samples, rng)
            if self.noise_files else synthetic.pink_noise(samples, rng)
            for _ in range(channels)])
        rir = (_read_mono(self.rir_files[rng.integers(len(self.rir_files))])
               if self.rir_files else synthetic.room_impulse_response(rng))
        keys = jax.numpy.stack([jax.random.PRNGKey(seed)] * channels)
        degraded, target = self.degrade(keys, audio.T, noise.astype(np.float32),
                                        np.broadcast_to(rir, (channels, len(rir))))
        return np.asarray(degraded).T, np.asarray(target).T


def run(jobs: list[tuple[str, str, str, str | None]], preset: str, seed: int,
        noise: str | None, rir: str | None, subtype: str, quiet: bool, output: str) -> int:
    """Degrade ``(input, relative path, output, target output or None)``
    jobs; returns the exit status."""
    from vf_jax.restoration import files
    degrader = FileDegrader(preset, noise, rir)

    def job(item, advance):
        src, rel, dst, target_dst = item
        audio, sr = audio_io.read_audio(src)
        degraded, target = degrader(audio, sr, _file_seed(seed, rel))
        audio_io.write_audio(dst, degraded, SAMPLE_RATE, subtype)
        if target_dst is not None:
            audio_io.write_audio(target_dst, target, SAMPLE_RATE, subtype)

    return files.run(jobs, job, desc="degrading", quiet=quiet,
                     summary=lambda done, total: f"degraded {done} of {total} file(s) -> {output}")

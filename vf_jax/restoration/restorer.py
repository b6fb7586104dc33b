"""The restorer: degraded audio in, 44.1 kHz speech out (:class:`Restorer`).

Per window of at most 30 s (:mod:`vf_jax.restoration.windows`): mel front end
-> analysis network (restored log10 mel) -> vocoder
(:mod:`vf_jax.restoration.networks`) -> centre alignment as the original
(:func:`vf_jax.models.vocoder.trim_center`) -> peak normalisation only when
the peak exceeds 1. Windows are padded to a frame bucket
(:mod:`vf_jax.restoration.buckets`); mode 2 (batch statistics) depends on the
exact shape and runs the analysis unpadded. Many inputs share device batches
(:mod:`vf_jax.restoration.batched`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.compilation import enable_compilation_cache
from vf_jax.errors import UserError
from vf_jax.models.vocoder import trim_center
from vf_jax.restoration import download, networks
from vf_jax.restoration import weights as weights_lib
from vf_jax.restoration.batched import BatchedRestoration, read_items
from vf_jax.restoration.buckets import FRONT_END, HOP, frame_bucket, ladder_name
from vf_jax.restoration.finish import check_finish, finish
from vf_jax.restoration.weights import analysis_kind, analysis_width
from vf_jax.restoration.windows import (MAX_WINDOW_SECONDS, OVERLAP_SECONDS, Restoration, assemble,
                                        longest_window, window_plan)

MODES = (0, 1, 2)


def as_input(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(samples,)`` or ``(samples, channels)`` audio at any rate, checked, as
    ``(samples, channels)`` float32 at 44.1 kHz."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise UserError("audio must be (samples,) or (samples, channels) with samples > 0")
    if not np.all(np.isfinite(audio)):
        raise UserError("audio contains NaN or infinite samples")
    return audio_io.resample(audio, int(sample_rate), SAMPLE_RATE)


def compile_for(variables, length: int, channels: int = 1,
                max_window: int = round(MAX_WINDOW_SECONDS * SAMPLE_RATE),
                overlap: int = round(OVERLAP_SECONDS * SAMPLE_RATE),
                meta: dict | None = None, precision: str = "float32", mode: int = 0,
                ladder: str = "fine") -> None:
    """Compile the networks for restoring ``length`` samples (44.1 kHz) of
    ``channels`` channels in ``mode`` (0 or 1) at ``precision``, ahead of the
    call (which then finds them in JAX's caches). ``variables`` may hold
    ``jax.ShapeDtypeStruct`` leaves (:func:`vf_jax.restoration.weights.shape_template`),
    so this can run while the arrays are still being read."""
    f32, i32 = np.float32, np.int32
    key = jax.ShapeDtypeStruct(jax.random.PRNGKey(0).shape, jax.random.PRNGKey(0).dtype)
    for size in sorted({size for _, size in window_plan(length, max_window, overlap, ladder)}):
        bucket = frame_bucket(FRONT_END.num_frames(size), ladder)
        if mode == 1:
            networks.remove_high_frequency_jit.trace(
                jax.ShapeDtypeStruct((channels, bucket * HOP), f32),
                jax.ShapeDtypeStruct((), i32)).lower().compile()
        networks.analyse_jit.trace(
            variables["analysis"], jax.ShapeDtypeStruct((channels, bucket * HOP), f32),
            jax.ShapeDtypeStruct((), i32), key, n_frames=bucket, train_bn=False,
            dropout=False, kind=analysis_kind(meta), width=analysis_width(meta),
            precision=precision).lower().compile()
        networks.synthesise_jit.trace(
            variables["vocoder"]["params"], jax.ShapeDtypeStruct((channels, bucket, 128), f32),
            jax.ShapeDtypeStruct((), i32), size=networks.vocoder_size(meta),
            precision=precision).lower().compile()


class Restorer:
    """VoiceFixer restoration with converted (or trained) weights.

    >>> restorer = Restorer.from_folder("weights/")            # doctest: +SKIP
    >>> restored = restorer.restore(audio, sample_rate=16000)  # doctest: +SKIP
    """

    def __init__(self, variables: dict, meta: dict | None = None,
                 max_window_seconds: float = MAX_WINDOW_SECONDS,
                 overlap_seconds: float = OVERLAP_SECONDS, precision: str = "float32",
                 compilation_cache: bool | str = True, ladder: str | None = None):
        """``ladder``: the frame buckets windows are padded to
        (:mod:`vf_jax.restoration.buckets`; default: the backend's, ``fine``
        on CPU, ``coarse`` on TPU and GPU), which also bounds the longest
        window (:func:`vf_jax.restoration.windows.longest_window`).
        ``compilation_cache``: keep compiled programs on disk for later
        processes (JAX's persistent cache, for the whole process):
        ``True`` uses :func:`vf_jax.compilation.enable_compilation_cache`'s
        folder (``$VF_JAX_COMPILATION_CACHE``, ``off`` disables), a string is
        the folder, ``False`` leaves JAX's settings as they are."""
        networks.compute_dtype(precision)        # a bad value fails here
        if compilation_cache is not False:
            enable_compilation_cache(None if compilation_cache is True else compilation_cache)
        self.variables = jax.device_put(variables)
        self.meta = meta or {}
        self.precision = precision
        self.ladder = ladder_name(ladder)
        self.max_window = longest_window(int(round(max_window_seconds * SAMPLE_RATE)),
                                         self.ladder)
        self.overlap = int(round(overlap_seconds * SAMPLE_RATE))
        if self.overlap >= self.max_window:
            raise ValueError("overlap must be shorter than the window")

    @classmethod
    def from_folder(cls, path: str | None = None, prepare: tuple[tuple[int, int], ...] = (),
                    prepare_mode: int = 0, offline: bool = False, **kwargs) -> "Restorer":
        """Load a weights folder (default: :func:`vf_jax.restoration.weights.default_weights_dir`,
        where VoiceFixer's published weights are downloaded and converted on
        first use unless ``offline`` or ``$VF_JAX_OFFLINE``:
        :func:`vf_jax.restoration.download.ensure_weights`).

        ``prepare``: ``(samples at 44.1 kHz, channels)`` of inputs to compile
        for, in ``prepare_mode``, while the arrays are read (see :meth:`prepare`).
        """
        path = os.path.expanduser(download.ensure_weights(path, offline))
        if not prepare:
            return cls(*weights_lib.load(path), **kwargs)
        meta = weights_lib.load_meta(path)
        restorer = cls({}, meta, **kwargs)
        with ThreadPoolExecutor(1) as pool:
            loading = pool.submit(weights_lib.load, path)
            try:
                template = weights_lib.shape_template(meta)
                for length, channels in prepare:
                    compile_for(template, length, channels, restorer.max_window,
                                restorer.overlap, meta, restorer.precision, prepare_mode,
                                restorer.ladder)
            finally:
                variables, meta = loading.result()   # a broken folder is the error to report
        restorer.variables, restorer.meta = jax.device_put(variables), meta
        return restorer

    def prepare(self, length: int, channels: int = 1, mode: int = 0) -> None:
        """Compile for inputs of ``length`` samples (44.1 kHz) and ``channels``
        channels now rather than on the first :meth:`restore` (mode 0 or 1)."""
        compile_for(self.variables, length, channels, self.max_window, self.overlap,
                    self.meta, self.precision, mode, self.ladder)

    # -- public API ------------------------------------------------------
    def windows(self, length: int) -> list[tuple[int, int]]:
        """``(start, size)`` of the windows an input of ``length`` samples (44.1
        kHz) is restored in."""
        return window_plan(length, self.max_window, self.overlap, self.ladder)

    def restore(self, audio: np.ndarray, sample_rate: int, mode: int = 0,
                seed: int = 0, dropout: bool = True,
                progress: Callable[[int], None] | None = None, strength: float = 1.0,
                loudness: str = "peak") -> np.ndarray:
        """Restore ``(samples,)`` or ``(samples, channels)`` audio at any rate;
        returns 44.1 kHz audio of the same layout (``strength``, ``loudness``:
        :func:`finish`)."""
        restored = self.restore_full(audio, sample_rate, mode, seed, dropout, progress,
                                     strength, loudness).audio
        return restored if np.ndim(audio) == 2 else restored[:, 0]

    def restore_full(self, audio: np.ndarray, sample_rate: int, mode: int = 0,
                     seed: int = 0, dropout: bool = True,
                     progress: Callable[[int], None] | None = None, strength: float = 1.0,
                     loudness: str = "peak") -> Restoration:
        """Like :meth:`restore`, returning the restored log10 mel too.

        Mode 0: eval. Mode 1: eval after removing content above the bin holding
        95 % of the cumulative log energy. Mode 2: BatchNorm on batch statistics
        and dropout active (``seed``; ``dropout=False`` turns it off); the
        stored statistics stay untouched. Channels are restored independently.
        """
        if mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {mode}")
        check_finish(strength, loudness)
        audio = as_input(audio, sample_rate)
        windows = self.windows(audio.shape[0])
        key = jax.random.PRNGKey(seed)
        restored = []
        for i, (start, size) in enumerate(windows):
            key, sub = jax.random.split(key)
            restored.append(self._restore_window(audio[start:start + size].T, mode, sub, dropout))
            if progress is not None:
                progress(size if i == 0 else start + size - (windows[i - 1][0] + windows[i - 1][1]))
        result = assemble(windows, audio.shape[0], restored)
        result.audio = finish(result.audio, audio, strength, loudness)
        return result

    def restore_many(self, items: Iterable, mode: int = 0, batch_size: int | None = None,
                     seed: int = 0, dropout: bool = True, strength: float = 1.0,
                     loudness: str = "peak", read_ahead: int = 8) -> Iterator:
        """Restore each of ``items``, yielding its :class:`Restoration` in the
        order given; windows of many inputs share device batches of
        ``batch_size`` rows (default: :func:`default_batch_size`).

        An item is a path (read in a background thread, ``read_ahead`` files
        ahead) or an ``(audio, sample_rate)`` pair, audio ``(samples,)`` or
        ``(samples, channels)``. An item that cannot be restored (a
        :class:`vf_jax.errors.UserError`: unreadable, empty, NaN) yields that
        error instead, and the others go on. Mode 2 restores each item alone
        (see the module). ``strength``, ``loudness``: :func:`finish`.
        """
        if mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {mode}")
        check_finish(strength, loudness)
        packer = (None if mode == 2 else
                  BatchedRestoration(self, mode, batch_size, strength=strength,
                                     loudness=loudness))
        ready: dict[int, object] = {}
        next_out = 0
        for index, item in enumerate(read_items(items, read_ahead)):
            try:
                if isinstance(item, UserError):
                    raise item
                audio, rate = item
                if packer is None:
                    ready[index] = self.restore_full(audio, rate, 2, seed, dropout,
                                                     strength=strength, loudness=loudness)
                else:
                    packer.add(index, as_input(audio, rate))
            except UserError as e:
                ready[index] = e
            if packer is not None:
                ready.update(packer.finished)
                packer.finished.clear()
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
        if packer is not None:
            packer.flush()
            ready.update(packer.finished)
        while next_out in ready:
            yield ready.pop(next_out)
            next_out += 1

    # -- one window --------------------------------------------------------
    def _restore_window(self, segment: np.ndarray, mode: int, key, dropout: bool):
        """``(channels, L)`` at 44.1 kHz -> waveform ``(channels, L)``, log mel
        ``(channels, T, 128)``."""
        length = segment.shape[-1]
        frames = FRONT_END.num_frames(length)
        bucket = frame_bucket(frames, self.ladder)
        kind, width = analysis_kind(self.meta), analysis_width(self.meta)
        if mode == 2:
            # Batch statistics depend on the exact shape and on the batch:
            # each channel alone, unpadded.
            log_mel = jnp.concatenate([
                networks.analyse_jit(self.variables["analysis"], jnp.asarray(ch[None]), length,
                                     key, n_frames=frames, train_bn=True, dropout=dropout,
                                     kind=kind, width=width, precision=self.precision)
                for ch in segment], axis=0)
            log_mel = jnp.pad(log_mel, ((0, 0), (0, bucket - frames), (0, 0)))
        else:
            padded = np.zeros((segment.shape[0], bucket * HOP), np.float32)
            padded[:, :length] = segment
            if mode == 1:       # on the bucket's shape: one program for every length
                padded = networks.remove_high_frequency_jit(jnp.asarray(padded),
                                                            jnp.int32(length))
            log_mel = networks.analyse_jit(self.variables["analysis"], jnp.asarray(padded),
                                           jnp.int32(length), key, n_frames=bucket,
                                           train_bn=False, dropout=False, kind=kind,
                                           width=width, precision=self.precision)
        wav = networks.synthesise_jit(self.variables["vocoder"]["params"], log_mel,
                                      jnp.int32(frames), size=networks.vocoder_size(self.meta),
                                      precision=self.precision)
        wav = trim_center(np.asarray(wav), length, frames)
        return wav, np.asarray(log_mel[:, :frames])

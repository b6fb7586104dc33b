"""Restoration: degraded audio in, 44.1 kHz speech out.

Per window of at most 30 s (the original processes 30 s segments whole):
mel front end -> analysis network (restored log10 mel) -> vocoder -> centre
alignment as the original (:func:`vf_jax.models.vocoder.trim_center`) -> peak
normalisation only when the peak exceeds 1.

Longer inputs are cut into equal overlapping windows, hop a multiple of 441
samples, and cross-faded with complementary raised-cosine ramps (the original
concatenates 30 s pieces and clicks at the joins).

Compilation: windows are zero-padded to a small ladder of frame buckets and the
networks mask everything past the true end (see ``vf_jax.models.layers``), so results
equal the unpadded computation and a folder of files of any lengths compiles at
most ``len(FRAME_BUCKETS)`` shapes. Mode 2 (batch statistics) depends on the
exact shape and runs the analysis unpadded.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vf_jax import compilation
from vf_jax.audio import io as audio_io
from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError
from vf_jax.models import registry as models
from vf_jax.models.resunet import padded_frames
from vf_jax.models.vocoder import GENERATOR_SIZES, TFGANGenerator, normalise_mel, trim_center
from vf_jax.restoration import weights as weights_lib

FRONT_END = mel_lib.FRONT_ENDS[SAMPLE_RATE]
HOP = FRONT_END.hop
MAX_WINDOW_SECONDS = 30.0
OVERLAP_SECONDS = 0.5       # the least overlap of neighbouring windows


def _frame_buckets(first: int = 128, last: int = 3008, growth: float = 1.1):
    """Static frame counts the networks are compiled for: multiples of 64 growing
    by about 10 % (so padding wastes at most ~10 % of the compute), up to the
    bucket of a 30 s window with the vocoder's tail (3008)."""
    buckets = [first]
    while buckets[-1] < last:
        nxt = max(buckets[-1] + 64, round(buckets[-1] * growth / 64) * 64)
        buckets.append(last if nxt * 1.05 >= last else nxt)
    return tuple(buckets)


FRAME_BUCKETS = _frame_buckets()
MODES = (0, 1, 2)


def frame_bucket(frames: int) -> int:
    """Smallest bucket holding ``frames`` plus the UNet's and vocoder's padding."""
    need = max(padded_frames(frames), frames + 5)
    for b in FRAME_BUCKETS:
        if b >= need:
            return b
    return padded_frames(need)


# ------------------------------------------------------------ mode 1 ---

def _remove_high_frequency(wav, ratio: float = 0.95):
    """The original's mode-1 preprocessing, ``(B, L)`` -> ``(B, L)``.

    STFT 2048/512 (librosa's defaults, zero padding), per-bin energy
    ``sum_t max(log10(|S| + 1e-8), 0)``, zero every bin from the first one at
    which the cumulative energy reaches ``ratio`` of the total, inverse STFT.
    (The original's inverse drops the last ``L % 512`` samples; here the length
    is kept.)
    """
    spec = stft_lib.stft(wav, 2048, 512, pad_mode="constant")
    mag = jnp.abs(spec)
    energy = jnp.sum(jnp.maximum(jnp.log10(mag + 1e-8), 0.0), axis=-2)   # (B, F)
    cumulative = jnp.cumsum(energy, axis=-1)
    threshold = jnp.sum(energy, axis=-1, keepdims=True) * ratio
    cut = jnp.argmax(cumulative >= threshold, axis=-1)                  # (B,)
    keep = jnp.arange(energy.shape[-1])[None, :] < cut[:, None]
    kept = mag * keep[:, None, :]
    phase = spec / (mag + 1e-8)
    return stft_lib.istft(kept * phase, 512, wav.shape[-1], n_fft=2048)


remove_high_frequency = compilation.jit(_remove_high_frequency, static_argnames=("ratio",))


# ------------------------------------------------------- the networks ---

PRECISIONS = ("float32", "bf16")


def _compute_dtype(precision: str):
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return jnp.bfloat16 if precision == "bf16" else jnp.float32


def _cast(tree, dtype):
    return jax.tree_util.tree_map(lambda x: x.astype(dtype), tree)


def _analyse(variables, wav, length, rng, *, n_frames: int, train_bn: bool,
             dropout: bool, kind: str = "released", precision: str = "float32"):
    """``(B, samples)`` -> restored log10 mel ``(B, n_frames, 128)`` float32 by
    the analysis network ``kind`` (:data:`vf_jax.models.registry.ANALYSIS_KINDS`).

    ``length``: true samples when ``wav`` is a padded bucket, else None.
    ``precision``: the network's arithmetic, ``float32`` or ``bf16`` (its
    parameters and activations in bfloat16; the front end stays float32).
    """
    dtype = _compute_dtype(precision)
    mel, _ = mel_lib.mel_spectrogram(wav, FRONT_END, n_frames, length)
    model = models.analysis_module(kind)
    variables = {**variables, "params": _cast(variables["params"], dtype)}
    if train_bn:   # batch statistics; stored ones untouched (mutable, discarded)
        out, _ = model.apply(variables, mel.astype(dtype), train_bn=True,
                             deterministic=not dropout, valid=None,
                             mutable=["batch_stats"], rngs={"dropout": rng})
        return out.astype(jnp.float32)
    valid = None if length is None else 1 + length // HOP
    return model.apply(variables, mel.astype(dtype), train_bn=False, deterministic=True,
                       valid=valid).astype(jnp.float32)


def _vocode(params, log_mel, frames, *, size: tuple = (), precision: str = "float32"):
    """Restored log10 mel ``(B, T_bucket, 128)`` with ``frames`` valid ->
    waveform ``(B, 441 * T_bucket)`` float32 of which ``441 * (frames + tail)``
    count. ``size``: the generator's ``(name, value)`` sizes
    (:func:`vocoder_size`); ``precision`` as :func:`_analyse`."""
    dtype = _compute_dtype(precision)
    feats, valid = normalise_mel(mel_lib.from_log(log_mel), frames)
    return TFGANGenerator(**dict(size)).apply({"params": _cast(params, dtype)},
                                              feats.astype(dtype), valid).astype(jnp.float32)


_analyse_jit = compilation.jit(_analyse, static_argnames=("n_frames", "train_bn", "dropout",
                                                          "kind", "precision"))
_vocode_jit = compilation.jit(_vocode, static_argnames=("size", "precision"))


def vocoder_size(meta: dict | None) -> tuple:
    """The generator sizes a weights folder records (none: the published ones)."""
    vocoder = (meta or {}).get("vocoder", {})
    return tuple((k, int(vocoder[k])) for k in GENERATOR_SIZES if k in vocoder)


def analysis_kind(meta: dict | None) -> str:
    return (meta or {}).get("analysis", {}).get("kind", "released")


def compile_for(variables, length: int, channels: int = 1,
                max_window: int = round(MAX_WINDOW_SECONDS * SAMPLE_RATE),
                overlap: int = round(OVERLAP_SECONDS * SAMPLE_RATE),
                meta: dict | None = None, precision: str = "float32") -> None:
    """Compile the networks for restoring ``length`` samples (44.1 kHz) of
    ``channels`` channels in modes 0 and 1 at ``precision``, ahead of the call (which then finds
    them in JAX's caches). ``variables`` may hold ``jax.ShapeDtypeStruct``
    leaves (:func:`vf_jax.restoration.weights.shape_template`), so this can run while the
    arrays are still being read."""
    f32, i32 = np.float32, np.int32
    key = jax.ShapeDtypeStruct(jax.random.PRNGKey(0).shape, jax.random.PRNGKey(0).dtype)
    for size in sorted({size for _, size in window_plan(length, max_window, overlap)}):
        frames = FRONT_END.num_frames(size)
        bucket = frame_bucket(frames)
        _analyse_jit.trace(variables["analysis"],
                           jax.ShapeDtypeStruct((channels, bucket * HOP), f32),
                           jax.ShapeDtypeStruct((), i32), key, n_frames=bucket,
                           train_bn=False, dropout=False, kind=analysis_kind(meta),
                           precision=precision).lower().compile()
        _vocode_jit.trace(variables["vocoder"]["params"],
                          jax.ShapeDtypeStruct((channels, bucket, 128), f32),
                          jax.ShapeDtypeStruct((), i32),
                          size=vocoder_size(meta), precision=precision).lower().compile()


def vocode(vocoder_params, log_mel: np.ndarray, length: int, size: tuple = ()) -> np.ndarray:
    """Restored log10 mel ``(B, frames, 128)`` of ``length`` samples (``frames
    = 1 + length // 441``) -> waveform ``(B, length)`` through the vocoder
    (generator ``size``, :func:`vocoder_size`), aligned as a restoration is."""
    frames = log_mel.shape[1]
    padded = np.zeros((log_mel.shape[0], frame_bucket(frames), log_mel.shape[2]), np.float32)
    padded[:, :frames] = log_mel
    wav = _vocode_jit(vocoder_params, jnp.asarray(padded), jnp.int32(frames), size=size)
    return trim_center(np.asarray(wav), length, frames)


# ------------------------------------------------------------ windows ---

def plan_windows(length: int, max_window: int, overlap: int) -> list[tuple[int, int]]:
    """The fewest equal windows ``(start, size)`` covering ``length`` samples,
    each at most ``max_window`` long, neighbours overlapping by at least
    ``overlap``, starts on the 441-sample frame grid."""
    if length <= max_window:
        return [(0, length)]
    n = 2
    while True:
        hop = (length - overlap) // (n * HOP) * HOP
        size = length - (n - 1) * hop
        if size <= max_window and size - hop >= overlap:
            return [(i * hop, size) for i in range(n)]
        n += 1


def fill_bucket(windows, length: int, max_window: int) -> list[tuple[int, int]]:
    """Grow equal windows to the largest size their frame bucket holds: the
    padding would cost the same compute, and longer overlaps hide the seams."""
    size = windows[0][1]
    bucket = frame_bucket(FRONT_END.num_frames(size))
    largest = min(max_window, (bucket - 6) * HOP + HOP - 1, length)
    n = len(windows)
    hop = -(-(length - largest) // ((n - 1) * HOP)) * HOP
    grown = length - (n - 1) * hop
    if grown < size or frame_bucket(FRONT_END.num_frames(grown)) != bucket:
        return windows
    return [(i * hop, grown) for i in range(n)]


def window_plan(length: int, max_window: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the windows ``length`` samples are restored in:
    :func:`plan_windows`, grown by :func:`fill_bucket` when there are several."""
    windows = plan_windows(length, max_window, overlap)
    return fill_bucket(windows, length, max_window) if len(windows) > 1 else windows


def crossfade_weights(windows, length: int, axis_scale: int = 1) -> list[np.ndarray]:
    """Per-window weights summing to one: raised-cosine ramps over each overlap.

    ``axis_scale`` converts sample positions to another grid (441 for frames).
    """
    weights = []
    for i, (start, size) in enumerate(windows):
        s, n = start // axis_scale, -(-size // axis_scale)
        w = np.ones(n, np.float64)
        if i > 0:                     # fade in over the overlap with the previous
            prev_start, prev_size = windows[i - 1]
            ov = (prev_start + prev_size) // axis_scale - s
            w[:ov] = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        if i + 1 < len(windows):      # fade out over the overlap with the next
            ov = (start + size) // axis_scale - windows[i + 1][0] // axis_scale
            w[n - ov:] = np.cos(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        weights.append(w)
    return weights


# ------------------------------------------------------------ restorer ---

@dataclasses.dataclass
class Restoration:
    """Restored audio ``(samples, channels)`` at 44.1 kHz and the restored
    log10 mel ``(channels, frames, 128)``."""
    audio: np.ndarray
    log_mel: np.ndarray
    sample_rate: int = SAMPLE_RATE


class Restorer:
    """VoiceFixer restoration with converted (or trained) weights.

    >>> restorer = Restorer.from_folder("weights/")            # doctest: +SKIP
    >>> restored = restorer.restore(audio, sample_rate=16000)  # doctest: +SKIP
    """

    def __init__(self, variables: dict, meta: dict | None = None,
                 max_window_seconds: float = MAX_WINDOW_SECONDS,
                 overlap_seconds: float = OVERLAP_SECONDS, precision: str = "float32"):
        _compute_dtype(precision)                     # a bad value fails here
        self.variables = jax.device_put(variables)
        self.meta = meta or {}
        self.precision = precision
        self.max_window = int(round(max_window_seconds * SAMPLE_RATE))
        self.overlap = int(round(overlap_seconds * SAMPLE_RATE))
        if self.overlap >= self.max_window:
            raise ValueError("overlap must be shorter than the window")

    @classmethod
    def from_folder(cls, path: str | None = None, prepare: tuple[tuple[int, int], ...] = (),
                    **kwargs) -> "Restorer":
        """Load a weights folder (default: :func:`vf_jax.restoration.weights.default_weights_dir`).

        ``prepare``: ``(samples at 44.1 kHz, channels)`` of inputs to compile
        for while the arrays are read (see :meth:`prepare`).
        """
        path = os.path.expanduser(path or weights_lib.default_weights_dir())
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
                                restorer.overlap, meta, restorer.precision)
            finally:
                variables, meta = loading.result()   # a broken folder is the error to report
        restorer.variables, restorer.meta = jax.device_put(variables), meta
        return restorer

    def prepare(self, length: int, channels: int = 1) -> None:
        """Compile for inputs of ``length`` samples (44.1 kHz) and ``channels``
        channels now rather than on the first :meth:`restore` (modes 0 and 1)."""
        compile_for(self.variables, length, channels, self.max_window, self.overlap,
                    self.meta, self.precision)

    # -- public API ------------------------------------------------------
    def windows(self, length: int) -> list[tuple[int, int]]:
        """``(start, size)`` of the windows an input of ``length`` samples (44.1
        kHz) is restored in."""
        return window_plan(length, self.max_window, self.overlap)

    def restore(self, audio: np.ndarray, sample_rate: int, mode: int = 0,
                seed: int = 0, dropout: bool = True,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Restore ``(samples,)`` or ``(samples, channels)`` audio at any rate;
        returns 44.1 kHz audio of the same layout."""
        restored = self.restore_full(audio, sample_rate, mode, seed, dropout, progress).audio
        return restored if np.ndim(audio) == 2 else restored[:, 0]

    def restore_full(self, audio: np.ndarray, sample_rate: int, mode: int = 0,
                     seed: int = 0, dropout: bool = True,
                     progress: Callable[[int], None] | None = None) -> Restoration:
        """Like :meth:`restore`, returning the restored log10 mel too.

        Mode 0: eval. Mode 1: eval after removing content above the bin holding
        95 % of the cumulative log energy. Mode 2: BatchNorm on batch statistics
        and dropout active (``seed``; ``dropout=False`` turns it off); the
        stored statistics stay untouched. Channels are restored independently.
        """
        if mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {mode}")
        audio = np.asarray(audio, np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        if audio.ndim != 2 or audio.shape[0] == 0:
            raise UserError("audio must be (samples,) or (samples, channels) with samples > 0")
        if not np.all(np.isfinite(audio)):
            raise UserError("audio contains NaN or infinite samples")
        audio = audio_io.resample(audio, int(sample_rate), SAMPLE_RATE)
        length = audio.shape[0]
        windows = self.windows(length)
        fades = crossfade_weights(windows, length)
        out = np.zeros((length, audio.shape[1]), np.float64)
        total_frames = 1 + length // HOP
        mel_out = np.zeros((audio.shape[1], total_frames, 128), np.float64)
        mel_fades = crossfade_weights(windows, length, HOP) if len(windows) > 1 else None
        key = jax.random.PRNGKey(seed)
        for i, (start, size) in enumerate(windows):
            key, sub = jax.random.split(key)
            segment = audio[start:start + size].T            # (channels, size)
            wav, log_mel = self._restore_window(segment, mode, sub, dropout)
            if len(windows) == 1:
                out[:] = wav.T
                mel_out[:] = log_mel
            else:
                out[start:start + size] += wav.T * fades[i][:, None]
                f0 = start // HOP
                n = min(log_mel.shape[1], total_frames - f0, len(mel_fades[i]))
                mel_out[:, f0:f0 + n] += log_mel[:, :n] * mel_fades[i][None, :n, None]
            if progress is not None:
                progress(size if i == 0 else start + size - (windows[i - 1][0] + windows[i - 1][1]))
        peak = np.max(np.abs(out))
        if peak > 1.0:        # the original's peak handling: only when clipping
            out /= peak
        return Restoration(out.astype(np.float32), mel_out.astype(np.float32))

    # -- one window --------------------------------------------------------
    def _restore_window(self, segment: np.ndarray, mode: int, key, dropout: bool):
        """``(channels, L)`` at 44.1 kHz -> waveform ``(channels, L)``, log mel
        ``(channels, T, 128)``."""
        length = segment.shape[-1]
        if mode == 1:
            segment = np.asarray(remove_high_frequency(jnp.asarray(segment)))
        frames = FRONT_END.num_frames(length)
        bucket = frame_bucket(frames)
        if mode == 2:
            # Batch statistics depend on the exact shape and on the batch:
            # each channel alone, unpadded.
            log_mel = jnp.concatenate([
                _analyse_jit(self.variables["analysis"], jnp.asarray(ch[None]),
                             length, key, n_frames=frames, train_bn=True,
                             dropout=dropout, kind=analysis_kind(self.meta),
                             precision=self.precision)
                for ch in segment], axis=0)
            log_mel = jnp.pad(log_mel, ((0, 0), (0, bucket - frames), (0, 0)))
        else:
            padded = np.zeros((segment.shape[0], bucket * HOP), np.float32)
            padded[:, :length] = segment
            log_mel = _analyse_jit(self.variables["analysis"], jnp.asarray(padded),
                                   jnp.int32(length), key, n_frames=bucket,
                                   train_bn=False, dropout=False,
                                   kind=analysis_kind(self.meta), precision=self.precision)
        wav = _vocode_jit(self.variables["vocoder"]["params"], log_mel, jnp.int32(frames),
                          size=vocoder_size(self.meta), precision=self.precision)
        wav = trim_center(np.asarray(wav), length, frames)
        return wav, np.asarray(log_mel[:, :frames])

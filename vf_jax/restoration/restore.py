"""Restoration: degraded audio in, 44.1 kHz speech out.

Per window of at most 30 s (the original processes 30 s segments whole):
mel front end -> analysis network (restored log10 mel) -> vocoder -> centre
alignment as the original (:func:`vf_jax.models.vocoder.trim_center`) -> peak
normalisation only when the peak exceeds 1.

Longer inputs are cut into equal overlapping windows, hop a multiple of 441
samples, and cross-faded with complementary raised-cosine ramps (the original
concatenates 30 s pieces and clicks at the joins).

Many inputs (:meth:`Restorer.restore_many`): each channel of each window is
one row of a batch of rows sharing a frame bucket, and each full batch runs as
one program over every local device (``jax.jit`` on a mesh, the rows split
among them), so a corpus of any lengths compiles a handful of programs. The
rows are put back together by the code one input uses (:func:`assemble`):
both paths agree to float rounding. Mode 1 removes the high frequencies of each
window at its exact length before packing, as for one input. Mode 2 is not
batched: its BatchNorm statistics are those of one channel of one window,
unpadded (the original's semantics), which rows of a shared batch cannot
have; each input in mode 2 is restored alone.

Compilation: windows are zero-padded to a small ladder of frame buckets and the
networks mask everything past the true end (see ``vf_jax.models.layers``), so results
equal the unpadded computation and a folder of files of any lengths compiles at
most ``len(FRAME_BUCKETS)`` shapes. Mode 2 (batch statistics) depends on the
exact shape and runs the analysis unpadded.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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
from vf_jax.restoration.weights import analysis_kind, analysis_width

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
             dropout: bool, kind: str = "released", precision: str = "float32",
             width: float = 1.0):
    """``(B, samples)`` -> restored log10 mel ``(B, n_frames, 128)`` float32 by
    the analysis network ``kind`` (:data:`vf_jax.models.registry.ANALYSIS_KINDS`)
    at ``width`` (:func:`vf_jax.restoration.weights.analysis_width`).

    ``length``: true samples when ``wav`` is a padded bucket (one for the
    batch, or one per example ``(B,)``), else None. ``precision``: the
    network's arithmetic, ``float32`` or ``bf16`` (its parameters and
    activations in bfloat16; the front end stays float32).
    """
    dtype = _compute_dtype(precision)
    if length is not None and jnp.ndim(length) == 1:   # the reflection is at each example's end
        mel = jax.vmap(lambda w, n: mel_lib.mel_spectrogram(w, FRONT_END, n_frames, n)[0])(
            wav, length)
    else:
        mel, _ = mel_lib.mel_spectrogram(wav, FRONT_END, n_frames, length)
    model = models.analysis_module(kind, width)
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
    """Restored log10 mel ``(B, T_bucket, 128)`` with ``frames`` valid (one
    for the batch, or ``(B,)``) ->
    waveform ``(B, 441 * T_bucket)`` float32 of which ``441 * (frames + tail)``
    count. ``size``: the generator's ``(name, value)`` sizes
    (:func:`vocoder_size`); ``precision`` as :func:`_analyse`."""
    dtype = _compute_dtype(precision)
    feats, valid = normalise_mel(mel_lib.from_log(log_mel), frames)
    return TFGANGenerator(**dict(size)).apply({"params": _cast(params, dtype)},
                                              feats.astype(dtype), valid).astype(jnp.float32)


_analyse_jit = compilation.jit(_analyse, static_argnames=("n_frames", "train_bn", "dropout",
                                                          "kind", "precision", "width"))
_vocode_jit = compilation.jit(_vocode, static_argnames=("size", "precision"))


def vocoder_size(meta: dict | None) -> tuple:
    """The generator sizes a weights folder records (none: the published ones)."""
    vocoder = (meta or {}).get("vocoder", {})
    return tuple((k, int(vocoder[k])) for k in GENERATOR_SIZES if k in vocoder)


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
                           width=analysis_width(meta),
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


# ------------------------------------------------- input and assembly ---

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


def assemble(windows, length: int, restored) -> "Restoration":
    """The restored windows ``[(waveform (channels, size), log mel (channels,
    frames, 128))]`` of ``windows`` put together: cross-faded, then the
    original's peak rule (divide by the peak only when it exceeds 1)."""
    channels = restored[0][0].shape[0]
    out = np.zeros((length, channels), np.float64)
    total_frames = 1 + length // HOP
    mel_out = np.zeros((channels, total_frames, 128), np.float64)
    if len(windows) == 1:
        out[:] = restored[0][0].T
        mel_out[:] = restored[0][1]
    else:
        fades = crossfade_weights(windows, length)
        mel_fades = crossfade_weights(windows, length, HOP)
        for i, ((start, size), (wav, log_mel)) in enumerate(zip(windows, restored)):
            out[start:start + size] += wav.T * fades[i][:, None]
            f0 = start // HOP
            n = min(log_mel.shape[1], total_frames - f0, len(mel_fades[i]))
            mel_out[:, f0:f0 + n] += log_mel[:, :n] * mel_fades[i][None, :n, None]
    return Restoration(_peak_rule(out).astype(np.float32), mel_out.astype(np.float32))


def _peak_rule(x: np.ndarray) -> np.ndarray:
    """The original's peak handling: divide by the peak only when it exceeds 1."""
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 1.0 else x


LOUDNESS = ("peak", "input")


def check_finish(strength: float, loudness: str) -> None:
    """:func:`finish`'s settings, checked before any work."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must be between 0 and 1, got {strength}")
    if loudness not in LOUDNESS:
        raise UserError(f"loudness must be one of {LOUDNESS}, got {loudness!r}")


def finish(restored: np.ndarray, original: np.ndarray, strength: float = 1.0,
           loudness: str = "peak") -> np.ndarray:
    """The restored audio mixed with the input and levelled, both
    ``(samples, channels)`` at 44.1 kHz and time-aligned.

    ``strength`` (0-1): ``strength * restored + (1 - strength) * input``; 1
    is the restoration alone. ``loudness``: ``peak`` keeps the original's
    peak rule; ``input`` scales the result to the input's integrated loudness
    (ITU-R BS.1770, :mod:`pyloudnorm`; inputs shorter than its 0.4 s gate keep
    the peak rule), then the peak rule. With the defaults the restoration is
    returned unchanged.
    """
    check_finish(strength, loudness)
    if strength == 1.0 and loudness == "peak":
        return restored
    out = restored.astype(np.float64)
    if strength < 1.0:
        out = strength * out + (1.0 - strength) * original.astype(np.float64)
    if loudness == "input" and original.shape[0] >= round(0.4 * SAMPLE_RATE):
        import pyloudnorm
        meter = pyloudnorm.Meter(SAMPLE_RATE)
        target, now = meter.integrated_loudness(original), meter.integrated_loudness(out)
        if np.isfinite(target) and np.isfinite(now):
            out = out * 10.0 ** ((target - now) / 20.0)
    return _peak_rule(out).astype(np.float32)


# ----------------------------------------------------- many inputs ---

# Rows per device and batch. A v5e chip holds four 10 s windows at float32
# (benchmarks/README.md), a GPU more. XLA's CPU backend already spreads one
# row's convolutions over the cores, and a batch that does not fill is padded
# with copies: on a CPU, one row at a time was faster (benchmarks/README.md,
# corpus_restore).
ROWS_PER_DEVICE = {"cpu": 1, "gpu": 8, "tpu": 4}


def default_batch_size(devices=None) -> int:
    """Rows per batch for the local devices: a multiple of their number."""
    devices = devices or jax.local_devices()
    return ROWS_PER_DEVICE.get(devices[0].platform, 4) * len(devices)


def _restore_rows(variables, wav, lengths, *, n_frames: int, kind: str, size: tuple,
                  precision: str, width: float = 1.0):
    """Rows ``(B, bucket samples)`` with true ``lengths (B,)`` -> vocoder
    output ``(B, samples)`` and restored log10 mel ``(B, n_frames, 128)``:
    a window's :meth:`Restorer._restore_window` in modes 0 and 1, one length per row."""
    log_mel = _analyse(variables["analysis"], wav, lengths, None, n_frames=n_frames,
                       train_bn=False, dropout=False, kind=kind, precision=precision,
                       width=width)
    frames = 1 + lengths // HOP
    audio = _vocode(variables["vocoder"]["params"], log_mel, frames, size=size,
                    precision=precision)
    return audio, log_mel


_restore_rows_jit = compilation.jit(_restore_rows,
                                    static_argnames=("n_frames", "kind", "size", "precision",
                                                     "width"))


@dataclasses.dataclass
class _Input:
    """One input on its way: its windows and, per window and channel, its
    restored ``(waveform, log mel)`` once its row has run."""
    original: np.ndarray   # (samples, channels) at 44.1 kHz, for finish()
    windows: list
    results: list          # [window][channel] -> (wav (size,), log mel (frames, 128)) | None
    missing: int


class BatchedRestoration:
    """Rows of many inputs packed into batches of one frame bucket, run over
    the local devices (the module's "Many inputs"); modes 0 and 1."""

    def __init__(self, restorer, mode: int = 0, batch_size: int | None = None,
                 max_pending: int | None = None, strength: float = 1.0,
                 loudness: str = "peak"):
        if mode not in (0, 1):
            raise ValueError("only modes 0 and 1 are batched")
        self.restorer, self.mode = restorer, mode
        self.strength, self.loudness = strength, loudness
        devices = jax.local_devices()
        self.batch_size = batch_size or default_batch_size(devices)
        if self.batch_size % len(devices):
            self.batch_size += len(devices) - self.batch_size % len(devices)
        # Inputs held at once: enough for every bucket's batch to fill, bounded.
        self.max_pending = max_pending or 4 * self.batch_size
        mesh = Mesh(np.array(devices), ("rows",))
        self.rows = NamedSharding(mesh, P("rows"))
        self.variables = jax.device_put(restorer.variables, NamedSharding(mesh, P()))
        self.groups: dict[int, list] = collections.defaultdict(list)   # bucket -> rows
        self.inputs: dict[int, _Input] = {}
        self.finished: dict[int, Restoration] = {}

    # -- packing -----------------------------------------------------------
    def add(self, index: int, audio: np.ndarray) -> None:
        """Input ``index`` (``(samples, channels)`` at 44.1 kHz): its rows
        join their buckets' batches; full batches run."""
        length, channels = audio.shape
        windows = self.restorer.windows(length)
        self.inputs[index] = _Input(audio, windows, [[None] * channels for _ in windows],
                                    len(windows) * channels)
        for w, (start, size) in enumerate(windows):
            segment = audio[start:start + size].T                      # (channels, size)
            if self.mode == 1:
                segment = np.asarray(remove_high_frequency(jnp.asarray(segment)))
            bucket = frame_bucket(FRONT_END.num_frames(size))
            for c in range(channels):
                self.groups[bucket].append((index, w, c, segment[c]))
            while len(self.groups[bucket]) >= self.batch_size:
                self._run(bucket)
        while len(self.inputs) > self.max_pending:
            self._run(max(self.groups, key=lambda b: len(self.groups[b])))

    def flush(self) -> None:
        """Run every partly filled batch (padded with copies of a row)."""
        for bucket in list(self.groups):
            while self.groups[bucket]:
                self._run(bucket)

    def _run(self, bucket: int) -> None:
        rows = self.groups[bucket][:self.batch_size]
        del self.groups[bucket][:self.batch_size]
        if not self.groups[bucket]:
            del self.groups[bucket]
        hop = HOP
        wav = np.zeros((self.batch_size, bucket * hop), np.float32)
        lengths = np.zeros((self.batch_size,), np.int32)
        for r in range(self.batch_size):
            segment = rows[min(r, len(rows) - 1)][3]      # padding rows repeat the last one
            wav[r, :segment.size] = segment
            lengths[r] = segment.size
        restorer = self.restorer
        audio, log_mel = _restore_rows_jit(
            self.variables, jax.device_put(wav, self.rows), jax.device_put(lengths, self.rows),
            n_frames=bucket, kind=analysis_kind(restorer.meta),
            width=analysis_width(restorer.meta), size=vocoder_size(restorer.meta),
            precision=restorer.precision)
        audio, log_mel = np.asarray(audio), np.asarray(log_mel)
        for r, (index, w, c, segment) in enumerate(rows):
            frames = FRONT_END.num_frames(segment.size)
            item = self.inputs[index]
            item.results[w][c] = (trim_center(audio[r], segment.size, frames),
                                  log_mel[r, :frames])
            item.missing -= 1
            if item.missing == 0:
                self._finish(index)

    def _finish(self, index: int) -> None:
        item = self.inputs.pop(index)
        restored = [(np.stack([wav for wav, _ in window]), np.stack([mel for _, mel in window]))
                    for window in item.results]
        result = assemble(item.windows, item.original.shape[0], restored)
        result.audio = finish(result.audio, item.original, self.strength, self.loudness)
        self.finished[index] = result


@dataclasses.dataclass
class _Raised:
    error: BaseException


def read_items(items: Iterable, read_ahead: int = 8) -> Iterator:
    """``items`` with each path replaced by its ``(audio, rate)`` (or the
    :class:`UserError` reading it raised), read by a background thread up to
    ``read_ahead`` items ahead, so decoding overlaps the device work."""
    import queue
    import threading
    done = object()
    ahead: queue.Queue = queue.Queue(max(1, read_ahead))
    stop = threading.Event()

    def read():
        try:
            for item in items:
                if isinstance(item, (str, os.PathLike)):
                    try:
                        item = audio_io.read_audio(os.fspath(item))
                    except UserError as e:
                        item = e
                while not stop.is_set():
                    try:
                        ahead.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:      # handed to the consumer, raised there
            ahead.put(_Raised(e))
            return
        ahead.put(done)

    reader = threading.Thread(target=read, name="vf_jax-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()


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
                             width=analysis_width(self.meta), precision=self.precision)
                for ch in segment], axis=0)
            log_mel = jnp.pad(log_mel, ((0, 0), (0, bucket - frames), (0, 0)))
        else:
            padded = np.zeros((segment.shape[0], bucket * HOP), np.float32)
            padded[:, :length] = segment
            log_mel = _analyse_jit(self.variables["analysis"], jnp.asarray(padded),
                                   jnp.int32(length), key, n_frames=bucket,
                                   train_bn=False, dropout=False,
                                   kind=analysis_kind(self.meta),
                                   width=analysis_width(self.meta),
                                   precision=self.precision)
        wav = _vocode_jit(self.variables["vocoder"]["params"], log_mel, jnp.int32(frames),
                          size=vocoder_size(self.meta), precision=self.precision)
        wav = trim_center(np.asarray(wav), length, frames)
        return wav, np.asarray(log_mel[:, :frames])

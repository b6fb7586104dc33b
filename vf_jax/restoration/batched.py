"""Many inputs in shared device batches (:meth:`vf_jax.restoration.restorer.Restorer.restore_many`).

Each channel of each window is one row of a batch of rows sharing a frame
bucket of the restorer's ladder (:mod:`vf_jax.restoration.buckets`), and
each full batch runs as one program over every local device (``jax.jit`` on
a mesh, the rows split among them), so a corpus of any lengths compiles at
most one program per rung: three on a TPU or GPU. The rows are put back together by
the code one input uses (:func:`vf_jax.restoration.windows.assemble`): both
paths agree to float rounding. Mode 1 removes the high frequencies of each
row inside the same program, at the row's true length (as for one input). Mode 2 is not
batched: its BatchNorm statistics are those of one channel of one window,
unpadded (the original's semantics), which rows of a shared batch cannot
have; each input in mode 2 is restored alone.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import threading
from typing import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vf_jax.audio import io as audio_io
from vf_jax.errors import UserError
from vf_jax.models.vocoder import trim_center
from vf_jax.restoration import networks
from vf_jax.restoration.buckets import FRONT_END, HOP, frame_bucket
from vf_jax.restoration.finish import finish
from vf_jax.restoration.weights import analysis_kind, analysis_width
from vf_jax.restoration.windows import Restoration, assemble

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


@dataclasses.dataclass
class PendingInput:
    """One input on its way: its windows and, per window and channel, its
    restored ``(waveform, log mel)`` once its row has run."""
    original: np.ndarray   # (samples, channels) at 44.1 kHz, for finish()
    windows: list
    results: list          # [window][channel] -> (wav (size,), log mel (frames, 128)) | None
    missing: int


class BatchedRestoration:
    """Rows of many inputs packed into batches of one frame bucket, run over
    the local devices (see the module); modes 0 and 1. ``restorer``: a
    :class:`vf_jax.restoration.restorer.Restorer` (its variables, meta,
    precision and windows)."""

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
        self.inputs: dict[int, PendingInput] = {}
        self.finished: dict[int, Restoration] = {}

    # -- packing -----------------------------------------------------------
    def add(self, index: int, audio: np.ndarray) -> None:
        """Input ``index`` (``(samples, channels)`` at 44.1 kHz): its rows
        join their buckets' batches; full batches run."""
        length, channels = audio.shape
        windows = self.restorer.windows(length)
        self.inputs[index] = PendingInput(audio, windows, [[None] * channels for _ in windows],
                                          len(windows) * channels)
        for w, (start, size) in enumerate(windows):
            segment = audio[start:start + size].T                      # (channels, size)
            bucket = frame_bucket(FRONT_END.num_frames(size), self.restorer.ladder)
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
        wav = np.zeros((self.batch_size, bucket * HOP), np.float32)
        lengths = np.zeros((self.batch_size,), np.int32)
        for r in range(self.batch_size):
            segment = rows[min(r, len(rows) - 1)][3]      # padding rows repeat the last one
            wav[r, :segment.size] = segment
            lengths[r] = segment.size
        restorer = self.restorer
        audio, log_mel = networks.restore_rows_jit(
            self.variables, jax.device_put(wav, self.rows), jax.device_put(lengths, self.rows),
            n_frames=bucket, kind=analysis_kind(restorer.meta),
            width=analysis_width(restorer.meta), size=networks.vocoder_size(restorer.meta),
            precision=restorer.precision, high_frequency=self.mode == 1)
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
class Raised:
    """An exception of the reading thread, handed to the consumer."""
    error: BaseException


def read_items(items: Iterable, read_ahead: int = 8) -> Iterator:
    """``items`` with each path replaced by its ``(audio, rate)`` (or the
    :class:`UserError` reading it raised), read by a background thread up to
    ``read_ahead`` items ahead, so decoding overlaps the device work."""
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
            ahead.put(Raised(e))
            return
        ahead.put(done)

    reader = threading.Thread(target=read, name="vf_jax-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is done:
                return
            if isinstance(item, Raised):
                raise item.error
            yield item
    finally:
        stop.set()

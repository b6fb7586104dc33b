"""Training logs: TensorBoard event files and ``metrics.jsonl``.

``WORKDIR/tensorboard/`` holds scalars (loss, learning rate, gradient norm,
examples/s, validation metrics), mel images and audio, written with
tensorboardX (no TensorFlow needed; view with ``tensorboard --logdir WORKDIR``).
``WORKDIR/metrics.jsonl`` gets one JSON object per logged step. Only process 0
writes; on other hosts every call does nothing.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

MEL_RANGE = (-5.0, 2.0)   # log10 mel magnitudes shown (as the demo's figure)


def mel_image(log_mel: np.ndarray, value_range=MEL_RANGE, colormap: str = "magma") -> np.ndarray:
    """Log10 mel ``(frames, mels)`` -> RGB ``(mels, frames, 3)`` uint8, low
    frequencies at the bottom."""
    from matplotlib import colormaps
    lo, hi = value_range
    scaled = np.clip((np.asarray(log_mel, np.float32) - lo) / (hi - lo), 0.0, 1.0)
    rgb = colormaps[colormap](scaled.T[::-1])[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


class Summaries:
    """TensorBoard and JSON-lines writer for one run folder."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.writer = None
        self.jsonl = os.path.join(workdir, "metrics.jsonl")
        if self.active and tensorboard:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

    def scalars(self, step: int, values: dict, prefix: str = "") -> None:
        """Scalars to TensorBoard (tags ``prefix + name``) and one JSON line
        ``{"step": step, prefix + name: value, ...}``."""
        if not self.active:
            return
        row = {"step": int(step)}
        for name, value in values.items():
            row[prefix + name] = float(value)
            if self.writer is not None:
                self.writer.add_scalar(prefix + name, float(value), int(step))
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")

    def mel(self, tag: str, step: int, log_mel: np.ndarray) -> None:
        if self.active and self.writer is not None:
            self.writer.add_image(tag, mel_image(log_mel), int(step), dataformats="HWC")

    def audio(self, tag: str, step: int, wave: np.ndarray, sample_rate: int) -> None:
        if self.active and self.writer is not None:
            wave = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)
            self.writer.add_audio(tag, wave, int(step), sample_rate=sample_rate)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

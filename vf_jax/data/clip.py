"""The speech clip vf_jax ships (``vf_jax/data/clean_speech.flac``; its origin
is in ``vf_jax/data/README.md``): the demo's input and a one-clip speech
source for tests and notebooks."""

from __future__ import annotations

from importlib import resources

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE

CLIP = "clean_speech.flac"


def load_clip() -> np.ndarray:
    """The clip, mono float32 at 44.1 kHz, ``(samples,)``."""
    with resources.as_file(resources.files("vf_jax") / "data" / CLIP) as path:
        audio, sr = audio_io.read_audio(str(path))
    return audio_io.resample(audio, sr, SAMPLE_RATE)[:, 0]

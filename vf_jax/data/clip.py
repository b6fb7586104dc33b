"""The speech clip vf_jax ships (``vf_jax/data/clean_speech.flac``; its origin
is in ``vf_jax/data/README.md``): the demo's input and a one-clip speech
source for tests and notebooks; and a paired set made from it
(:func:`write_example_pairs`) for trying fine-tuning."""

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


# ------------------------------------------------------- example pairs ---

def telephone(audio: np.ndarray) -> np.ndarray:
    """A telephone line, a degradation the GSR simulation does not produce:
    8 kHz sampling, the 300-3400 Hz band, and G.711's 8-bit mu-law
    companding (ITU-T G.711: ``sign(x) ln(1 + 255|x|) / ln(256)`` quantised
    to 256 levels), back at 44.1 kHz. ``audio`` ``(samples,)`` at 44.1 kHz."""
    import scipy.signal
    narrow = audio_io.resample(np.asarray(audio, np.float32)[:, None], SAMPLE_RATE, 8000)[:, 0]
    band = scipy.signal.butter(4, (300.0, 3400.0), "bandpass", fs=8000, output="sos")
    narrow = np.clip(scipy.signal.sosfiltfilt(band, narrow), -1.0, 1.0)
    mu = 255.0
    coded = np.round(np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu) * 127) / 127
    decoded = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return audio_io.resample(decoded.astype(np.float32)[:, None], 8000, SAMPLE_RATE)[
        :len(audio), 0]


def write_example_pairs(folder: str, pieces: int = 7, max_delay_ms: float = 20.0,
                        seed: int = 0) -> tuple[str, str]:
    """A paired set from the clip, for trying fine-tuning: the clip cut into
    ``pieces`` consecutive stretches, each as ``folder/clean/clip/NN.wav``
    and, through :func:`telephone` and delayed by up to ``max_delay_ms``
    (as real pairs are offset), ``folder/degraded/clip/NN.wav``; 44.1 kHz,
    16 bit. Returns ``(degraded folder, clean folder)``."""
    import os
    clip = load_clip()
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, len(clip), pieces + 1).astype(int)
    out = {}
    for side in ("degraded", "clean"):
        out[side] = os.path.join(folder, side)
        os.makedirs(os.path.join(out[side], "clip"), exist_ok=True)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        piece = clip[a:b]
        delay = int(rng.uniform(0, max_delay_ms) * SAMPLE_RATE / 1000)
        degraded = np.concatenate([np.zeros(delay, np.float32), telephone(piece)])
        for side, audio in (("clean", piece), ("degraded", degraded)):
            audio_io.write_audio(os.path.join(out[side], "clip", f"{i:02d}.wav"), audio,
                                 SAMPLE_RATE, "PCM_16")
    return out["degraded"], out["clean"]

"""The compiled networks of restoration: front end and analysis network, then
the vocoder, on a batch of rows padded to a frame bucket.

Every function here is traceable; the ``*_jit`` names are the programs the
restorer runs, and the ahead-of-time programs (:mod:`vf_jax.aot.programs`)
are built from the same functions with the same static arguments.

Mode 1's preprocessing (:func:`remove_high_frequency`) is the original's;
mode 2 (BatchNorm on batch statistics, dropout) is ``train_bn=True``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vf_jax import compilation
from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib
from vf_jax.errors import UserError
from vf_jax.models import registry as models
from vf_jax.models.masks import mask_frames
from vf_jax.models.vocoder import GENERATOR_SIZES, TFGANGenerator, normalise_mel, trim_center
from vf_jax.restoration.buckets import FRONT_END, HOP, frame_bucket

PRECISIONS = ("float32", "bf16")


def compute_dtype(precision: str):
    """The networks' arithmetic for ``precision`` (float32 or bf16)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return jnp.bfloat16 if precision == "bf16" else jnp.float32


def cast(tree, dtype):
    return jax.tree_util.tree_map(lambda x: x.astype(dtype), tree)


def remove_high_frequency(wav, length=None, ratio: float = 0.95):
    """The original's mode-1 preprocessing, ``(B, L)`` -> ``(B, L)``.

    STFT 2048/512 (librosa's defaults, zero padding), per-bin energy
    ``sum_t max(log10(|S| + 1e-8), 0)``, zero every bin from the first one at
    which the cumulative energy reaches ``ratio`` of the total, inverse STFT.
    (The original's inverse drops the last ``L % 512`` samples; here the length
    is kept.)

    ``length``: the true samples of each row (``(B,)`` or one for all, traced)
    when the rows are padded to a bucket: the result's first ``length``
    samples are those of the unpadded row, the rest zero, so one program
    serves every length of a bucket.
    """
    frames = None
    if length is not None:
        length = jnp.broadcast_to(jnp.asarray(length, jnp.int32), wav.shape[:1])
        frames = 1 + length // 512
        wav = mask_frames(wav, length)
    spec = stft_lib.stft(wav, 2048, 512, pad_mode="constant")
    spec = mask_frames(spec, frames)      # frames past the true end would not exist unpadded
    mag = jnp.abs(spec)
    energy = jnp.sum(jnp.maximum(jnp.log10(mag + 1e-8), 0.0), axis=-2)   # (B, F)
    cumulative = jnp.cumsum(energy, axis=-1)
    threshold = jnp.sum(energy, axis=-1, keepdims=True) * ratio
    cut = jnp.argmax(cumulative >= threshold, axis=-1)                  # (B,)
    keep = jnp.arange(energy.shape[-1])[None, :] < cut[:, None]
    kept = mag * keep[:, None, :]
    phase = spec / (mag + 1e-8)
    out = stft_lib.istft(kept * phase, 512, wav.shape[-1], n_fft=2048, frames=frames)
    return mask_frames(out, length)


def analyse(variables, wav, length, rng, *, n_frames: int, train_bn: bool,
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
    dtype = compute_dtype(precision)
    mel, _ = mel_lib.mel_spectrogram(wav, FRONT_END, n_frames, length)   # (B,) reflect per row
    model = models.analysis_module(kind, width)
    variables = {**variables, "params": cast(variables["params"], dtype)}
    if train_bn:   # batch statistics; stored ones untouched (mutable, discarded)
        out, _ = model.apply(variables, mel.astype(dtype), train_bn=True,
                             deterministic=not dropout, valid=None,
                             mutable=["batch_stats"], rngs={"dropout": rng})
        return out.astype(jnp.float32)
    valid = None if length is None else 1 + length // HOP
    return model.apply(variables, mel.astype(dtype), train_bn=False, deterministic=True,
                       valid=valid).astype(jnp.float32)


def synthesise(params, log_mel, frames, *, size: tuple = (), precision: str = "float32"):
    """Restored log10 mel ``(B, T_bucket, 128)`` with ``frames`` valid (one
    for the batch, or ``(B,)``) -> waveform ``(B, 441 * T_bucket)`` float32 of
    which ``441 * (frames + tail)`` count, by the vocoder. ``size``: the
    generator's ``(name, value)`` sizes (:func:`vocoder_size`); ``precision``
    as :func:`analyse`."""
    dtype = compute_dtype(precision)
    feats, valid = normalise_mel(mel_lib.from_log(log_mel), frames)
    return TFGANGenerator(**dict(size)).apply({"params": cast(params, dtype)},
                                              feats.astype(dtype), valid).astype(jnp.float32)


def restore_rows(variables, wav, lengths, *, n_frames: int, kind: str, size: tuple,
                 precision: str, width: float = 1.0, high_frequency: bool = False):
    """Rows ``(B, bucket samples)`` with true ``lengths (B,)`` -> vocoder
    output ``(B, samples)`` and restored log10 mel ``(B, n_frames, 128)``: a
    window's restoration in mode 0, or with ``high_frequency`` mode 1 (its
    preprocessing at each row's length), one length per row (what a folder
    runs, :class:`vf_jax.restoration.batched.BatchedRestoration`)."""
    if high_frequency:
        wav = remove_high_frequency(wav, lengths)
    log_mel = analyse(variables["analysis"], wav, lengths, None, n_frames=n_frames,
                      train_bn=False, dropout=False, kind=kind, precision=precision,
                      width=width)
    frames = 1 + lengths // HOP
    audio = synthesise(variables["vocoder"]["params"], log_mel, frames, size=size,
                       precision=precision)
    return audio, log_mel


def restore_window(variables, wav, rng, *, mode: int, samples: int, kind: str, size: tuple,
                   precision: str, width: float = 1.0, ladder: str = "fine"):
    """One window's restoration as one traceable function: what
    :meth:`vf_jax.restoration.restorer.Restorer.restore_full` runs on a window
    of ``samples`` (44.1 kHz), its rows ``wav`` padded to the frame bucket of
    ``ladder`` (modes 0, 1) or unpadded (mode 2: batch statistics over the
    rows). Returns the vocoder output ``(B, bucket * HOP)`` (not yet
    centre-trimmed)."""
    frames = FRONT_END.num_frames(samples)
    bucket = frame_bucket(frames, ladder)
    train_bn = mode == 2
    if mode == 1:      # on the padded rows at the window's true length, as the restorer
        wav = remove_high_frequency(wav, jnp.int32(samples))
    log_mel = analyse(variables["analysis"], wav, None if train_bn else jnp.int32(samples), rng,
                      n_frames=frames if train_bn else bucket, train_bn=train_bn,
                      dropout=train_bn, kind=kind, precision=precision, width=width)
    if train_bn:
        log_mel = jnp.pad(log_mel, ((0, 0), (0, bucket - frames), (0, 0)))
    return synthesise(variables["vocoder"]["params"], log_mel, jnp.int32(frames), size=size,
                      precision=precision)


remove_high_frequency_jit = compilation.jit(remove_high_frequency, static_argnames=("ratio",))
analyse_jit = compilation.jit(analyse, static_argnames=("n_frames", "train_bn", "dropout",
                                                        "kind", "precision", "width"))
synthesise_jit = compilation.jit(synthesise, static_argnames=("size", "precision"))
restore_rows_jit = compilation.jit(restore_rows, static_argnames=("n_frames", "kind", "size",
                                                                  "precision", "width",
                                                                  "high_frequency"))


def vocoder_size(meta: dict | None) -> tuple:
    """The generator sizes a weights folder records (none: the published ones)."""
    vocoder = (meta or {}).get("vocoder", {})
    return tuple((k, int(vocoder[k])) for k in GENERATOR_SIZES if k in vocoder)


def vocode(vocoder_params, log_mel: np.ndarray, length: int, size: tuple = ()) -> np.ndarray:
    """Restored log10 mel ``(B, frames, 128)`` of ``length`` samples (``frames
    = 1 + length // 441``) -> waveform ``(B, length)`` through the vocoder
    (generator ``size``, :func:`vocoder_size`), aligned as a restoration is."""
    frames = log_mel.shape[1]
    padded = np.zeros((log_mel.shape[0], frame_bucket(frames), log_mel.shape[2]), np.float32)
    padded[:, :frames] = log_mel
    wav = synthesise_jit(vocoder_params, jnp.asarray(padded), jnp.int32(frames), size=size)
    return trim_center(np.asarray(wav), length, frames)

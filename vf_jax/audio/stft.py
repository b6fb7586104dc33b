"""Short-time Fourier transform, jittable, matching the original front end.

The original computes its STFT with a periodic Hann window, ``center=True`` and
reflect padding of ``n_fft // 2`` (torchlibrosa's conv-based STFT, which equals
``librosa.stft(..., pad_mode="reflect")``). Frames: ``1 + length // hop``.

Every function takes the signal as ``(..., samples)`` and works under ``jax.jit``
and ``jax.vmap``. Signals may be zero-padded to a static bucket size and carry
their true ``length`` as a traced integer: padding and frame positions are then
computed from ``length`` so the frames of the true signal come out exactly as
without the bucket (frames past ``1 + length // hop`` are to be ignored).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vf_jax import backends


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples (``scipy.signal.get_window('hann', n)``)."""
    k = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)


def num_frames(length: int, hop: int) -> int:
    """Frames of a centred STFT of ``length`` samples."""
    return 1 + length // hop


def reflect_index(pos, length):
    """Index into a signal of ``length`` samples for positions outside it.

    Reflection without repeating the edge sample (``numpy.pad(mode="reflect")``),
    applied repeatedly, so signals shorter than the padding still work.
    """
    period = jnp.maximum(2 * (length - 1), 1)
    idx = jnp.mod(pos, period)
    idx = jnp.where(idx >= length, period - idx, idx)
    return jnp.clip(idx, 0, jnp.maximum(length - 1, 0))


def frame_signal(x, n_fft: int, hop: int, n_frames: int, length=None,
                 pad_mode: str = "reflect"):
    """Centred frames of ``x``.

    Args:
      x: ``(..., samples)``.
      n_frames: static number of frames to produce.
      length: true signal length (static or traced; one for all signals, or one
        per signal, shaped ``x.shape[:-1]``); defaults to ``x.shape[-1]``.
      pad_mode: ``"reflect"`` (the original) or ``"constant"`` (zeros; librosa's
        current default).
    Returns:
      ``(..., n_frames, n_fft)``; frames ``1 + length // hop`` and later are
      to be ignored (the two forms below fill them differently).

    Two forms (:mod:`vf_jax.backends`), the same numbers in every frame that
    counts: on CPU and GPU one gather of every frame's samples; on a TPU no
    gather (:func:`padded_by_slices`, then :func:`frames_by_blocks`): the TPU
    compiler spent minutes on the frame gather of a restoration's front end,
    and some 30 s on a gather of the padded signal alone.
    """
    if pad_mode not in ("reflect", "constant"):
        raise ValueError(f"unknown pad_mode {pad_mode!r}")
    if length is None:
        length = x.shape[-1]
    if backends.family() == "tpu":
        blocks = -(-n_fft // hop)
        total = (n_frames + blocks - 1) * hop
        padded = padded_by_slices(x, length, n_fft // 2, total, pad_mode)
        return frames_by_blocks(padded, n_fft, hop, n_frames)
    pos = jnp.asarray(np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
                      - n_fft // 2, jnp.int32)
    return padded_signal(x, pos, length, pad_mode)


def per_signal(fn, x, length):
    """``fn(signal (samples,), length ())`` over every signal of ``x``
    ``(..., samples)`` with its own ``length`` (``x.shape[:-1]``)."""
    lead = x.shape[:-1]
    flat = jax.vmap(fn)(x.reshape((-1, x.shape[-1])),
                        jnp.broadcast_to(length, lead).reshape(-1))
    return flat.reshape(lead + flat.shape[1:])


def padded_signal(x, pos, length, pad_mode: str):
    """``x`` (``(..., samples)``) at positions ``pos`` (any shape, int),
    reflected (``"reflect"``) or zero (``"constant"``) outside ``[0, length)``
    (one length, or one per signal): ``(..., *pos.shape)``. A gather."""
    if jnp.ndim(length):
        return per_signal(lambda v, n: padded_signal(v, pos, n, pad_mode), x, length)
    if pad_mode == "reflect":
        return jnp.take(x, reflect_index(pos, length), axis=-1, mode="clip")
    inside = (pos >= 0) & (pos < length)
    idx = jnp.clip(pos, 0, x.shape[-1] - 1)
    return jnp.where(inside, jnp.take(x, idx, axis=-1, mode="clip"), 0.0)


def padded_by_slices(x, length, pad: int, total: int, pad_mode: str):
    """``x`` ``(..., samples)`` padded by ``pad`` at the start and reflected
    (``"reflect"``) or zero (``"constant"``) past ``length``: ``(..., total)``,
    positions ``-pad .. total - pad``; positions from ``length + pad`` on are
    zeros. No gather of the signal: static slices, a flip, one slice and one
    update at ``length`` (per signal). A signal no longer than ``pad``
    reflects more than once: its first ``3 pad`` positions are gathered
    (:func:`short_reflection`, a small gather) and chosen per signal."""
    n = x.shape[-1]
    if isinstance(length, int) and pad_mode == "reflect" and length <= pad:
        return short_reflection(x, length, pad, total)
    if isinstance(length, int) or pad_mode == "constant":
        return padded_once(x, length, pad, total, pad_mode)
    length = jnp.broadcast_to(jnp.asarray(length, jnp.int32), x.shape[:-1])
    if n <= pad:
        return short_reflection(x, length, pad, total)
    return jnp.where(jnp.expand_dims(length, -1) > pad,
                     padded_once(x, length, pad, total, pad_mode),
                     short_reflection(x, length, pad, total))


def padded_once(x, length, pad: int, total: int, pad_mode: str):
    """:func:`padded_by_slices` for signals longer than ``pad``."""
    n = x.shape[-1]
    size = max(total, n + 2 * pad)
    zeros = lambda k: jnp.zeros(x.shape[:-1] + (k,), x.dtype)
    left = jnp.flip(x[..., 1:pad + 1], axis=-1) if pad_mode == "reflect" else zeros(pad)
    out = jnp.concatenate([left, x, zeros(size - pad - n)], axis=-1)
    out = jnp.where(jnp.arange(size) < pad + jnp.expand_dims(length, -1), out, 0.0)
    if pad_mode == "reflect":
        # Position length + k holds x[length - 2 - k]: the flipped signal from n + 1 - length.
        def reflect_end(row, flipped, m):
            end = lax.dynamic_slice_in_dim(flipped, n + 1 - m, pad)
            return lax.dynamic_update_slice_in_dim(row, end, pad + m, axis=0)
        out = per_signal(lambda r, m: reflect_end(r[:size], r[size:], m),
                         jnp.concatenate([out, jnp.flip(x, axis=-1)], axis=-1), length)
    return out[..., :total]


def short_reflection(x, length, pad: int, total: int):
    """:func:`padded_by_slices` for signals as short as ``pad`` samples or
    shorter: :func:`padded_signal` at positions ``-pad .. 2 pad`` (reflected
    as often as needed, a small gather), zeros after."""
    pos = jnp.arange(-pad, 2 * pad)
    got = padded_signal(x, pos, length, "reflect")
    got = jnp.where(pos < jnp.expand_dims(length, -1) + pad, got, 0.0)
    width = min(total, 3 * pad)
    return jnp.concatenate([got[..., :width], jnp.zeros(x.shape[:-1] + (total - width,), x.dtype)],
                           axis=-1)


def frames_by_blocks(padded, n_fft: int, hop: int, n_frames: int):
    """Frames ``padded[..., t hop : t hop + n_fft]`` for ``t < n_frames``, from
    ``padded`` ``(..., (n_frames + ceil(n_fft / hop) - 1) hop)``: the signal
    as ``hop``-sample blocks, ``ceil(n_fft / hop)`` consecutive blocks side by
    side, cut to ``n_fft``. Static slices only."""
    blocks = -(-n_fft // hop)
    grid = padded.reshape(padded.shape[:-1] + (n_frames + blocks - 1, hop))
    frames = jnp.concatenate([grid[..., i:i + n_frames, :] for i in range(blocks)], axis=-1)
    return frames[..., :n_fft]


def padded_window(n_fft: int, win_length: int | None = None) -> np.ndarray:
    """A Hann window of ``win_length`` (default ``n_fft``) samples centred in
    ``n_fft`` zeros (``librosa.filters.get_window`` + ``util.pad_center``)."""
    win_length = n_fft if win_length is None else win_length
    left = (n_fft - win_length) // 2
    return np.pad(hann_window(win_length), (left, n_fft - win_length - left))


def stft(x, n_fft: int, hop: int, n_frames: int | None = None, length=None,
         pad_mode: str = "reflect", win_length: int | None = None):
    """Complex STFT, ``(..., samples)`` -> ``(..., frames, n_fft // 2 + 1)``.

    Unnormalised DFT of Hann-windowed centred frames, as ``librosa.stft`` with
    ``window="hann", center=True`` (and ``win_length``).
    """
    if n_frames is None:
        n_frames = num_frames(x.shape[-1], hop)
    frames = frame_signal(x, n_fft, hop, n_frames, length, pad_mode)
    frames = frames * jnp.asarray(padded_window(n_fft, win_length), x.dtype)
    return jnp.fft.rfft(frames, n=n_fft, axis=-1)


def magnitude(spec, power_floor: float = 0.0):
    """``sqrt(max(re² + im², power_floor))``.

    The original's model front end floors the power at 1e-8 (magnitude 1e-4).
    """
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    return jnp.sqrt(jnp.maximum(power, power_floor))


def istft(spec, hop: int, length: int, n_fft: int | None = None, frames=None):
    """Inverse of :func:`stft` by windowed overlap-add, as ``librosa.istft``.

    Args:
      spec: ``(..., frames, n_fft // 2 + 1)`` complex.
      length: output samples (static).
      frames: the true frame count of each signal (``spec``'s batch shape,
        traced) when ``spec`` is of a signal padded to a bucket: later frames
        are left out of both the sum and the window-sum normalisation, so the
        first ``hop * (frames - 1)`` samples come out as the inverse of the
        unpadded signal's STFT.
    Returns:
      ``(..., length)``.
    """
    if n_fft is None:
        n_fft = 2 * (spec.shape[-1] - 1)
    n_frames = spec.shape[-2]
    window = hann_window(n_fft)
    frames_out = jnp.fft.irfft(spec, n=n_fft, axis=-1) * jnp.asarray(window)
    total = n_fft + hop * (n_frames - 1)
    pos = (np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]).reshape(-1)
    batch_shape = frames_out.shape[:-2]
    tiny = np.finfo(np.float32).tiny
    if frames is None:
        # Window-sum normalisation where the squared windows overlap (librosa's
        # threshold: the smallest positive float).
        wss = np.zeros(total, np.float64)
        np.add.at(wss, pos, np.tile(window.astype(np.float64) ** 2, n_frames))
        norm = jnp.asarray(np.where(wss > tiny, wss, 1.0).astype(np.float32))
    else:
        kept = (jnp.arange(n_frames) < jnp.asarray(frames)[..., None]).astype(frames_out.dtype)
        frames_out = frames_out * kept[..., None]
        squares = kept[..., None] * jnp.asarray(window ** 2)
        wss = jnp.zeros(batch_shape + (total,), frames_out.dtype).at[..., pos].add(
            squares.reshape(batch_shape + (-1,)))
        norm = jnp.where(wss > tiny, wss, 1.0)
    flat = frames_out.reshape(batch_shape + (-1,))
    out = jnp.zeros(batch_shape + (total,), frames_out.dtype).at[..., pos].add(flat)
    out = out / norm
    start = n_fft // 2
    out = out[..., start:start + length]
    if out.shape[-1] < length:
        pad = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
        out = jnp.pad(out, pad)
    return out

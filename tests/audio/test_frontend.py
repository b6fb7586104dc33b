"""Front end against librosa and against the original's torch front end."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib


def max_rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def speechlike(n, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)))
    x += 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


@pytest.mark.parametrize("sr", sorted(mel_lib.FRONT_ENDS))
@pytest.mark.parametrize("n", [22050, 44100 * 2 + 137])
def test_stft_matches_librosa(sr, n):
    fe = mel_lib.FRONT_ENDS[sr]
    x = speechlike(n, sr)
    ours = jax.jit(lambda v: stft_lib.stft(v, fe.n_fft, fe.hop))(x)
    ref = librosa.stft(x, n_fft=fe.n_fft, hop_length=fe.hop, window="hann",
                       center=True, pad_mode="reflect").T
    assert ours.shape == ref.shape == (1 + n // fe.hop, fe.n_freq)
    assert max_rel_err(np.abs(ours), np.abs(ref)) <= 1e-5
    assert max_rel_err(ours.real, ref.real) <= 1e-5
    assert max_rel_err(ours.imag, ref.imag) <= 1e-5


def test_stft_constant_padding_matches_librosa():
    x = speechlike(10000, 44100)
    ours = stft_lib.stft(x, 2048, 512, pad_mode="constant")
    ref = librosa.stft(x, n_fft=2048, hop_length=512, pad_mode="constant").T
    assert max_rel_err(ours.real, ref.real) <= 1e-5


@pytest.mark.parametrize("n_fft,hop,win", [(1024, 120, 600), (512, 50, 240), (2048, 240, 1200)])
def test_stft_with_shorter_window_matches_librosa(n_fft, hop, win):
    """The vocoder losses' resolutions: a Hann window shorter than the FFT."""
    x = speechlike(9000, 44100)
    ours = stft_lib.stft(x, n_fft, hop, win_length=win)
    ref = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                       center=True, pad_mode="reflect").T
    assert ours.shape == ref.shape
    assert max_rel_err(ours.real, ref.real) <= 1e-5
    assert max_rel_err(ours.imag, ref.imag) <= 1e-5


@pytest.mark.parametrize("sr", sorted(mel_lib.FRONT_ENDS))
def test_mel_filterbank_matches_librosa(sr):
    fe = mel_lib.FRONT_ENDS[sr]
    ref = librosa.filters.mel(sr=sr, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=0,
                              fmax=sr / 2, htk=True, norm=None)
    ours = fe.filterbank()
    assert ours.shape == (fe.n_freq, fe.n_mels)
    assert max_rel_err(ours.T, ref) <= 1e-5


@pytest.mark.parametrize("sr", sorted(mel_lib.FRONT_ENDS))
def test_mel_spectrogram_matches_librosa(sr):
    fe = mel_lib.FRONT_ENDS[sr]
    x = speechlike(sr, sr, seed=1)
    mel, mag = mel_lib.mel_spectrogram(jnp.asarray(x), fe, power_floor=0.0)
    ref = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=fe.n_fft, hop_length=fe.hop, n_mels=fe.n_mels, power=1.0, htk=True,
        norm=None, fmin=0, fmax=sr / 2, pad_mode="reflect").T
    assert max_rel_err(mel, ref) <= 1e-5


def test_bucketed_signal_gives_the_same_frames():
    """A signal zero-padded to a bucket, with its true length, frames exactly."""
    fe = mel_lib.FRONT_ENDS[44100]
    x = speechlike(30000, 44100)
    frames = fe.num_frames(len(x))
    exact = stft_lib.stft(jnp.asarray(x), fe.n_fft, fe.hop)
    padded = jnp.pad(jnp.asarray(x), (0, 20000))
    bucketed = jax.jit(lambda v, n: stft_lib.stft(v, fe.n_fft, fe.hop, frames + 40, n))(
        padded, len(x))
    np.testing.assert_array_equal(np.asarray(bucketed[:frames]), np.asarray(exact))


@pytest.mark.parametrize("n", [1, 2, 10, 700])
def test_short_signals_reflect_like_numpy(n):
    """Signals shorter than the padding reflect repeatedly, in the forms of
    every backend (the TPU's run here on CPU)."""
    from vf_jax import backends
    x = speechlike(n, 44100)
    if n == 1:
        padded = np.full(n + 2048, x[0])
    else:
        padded = np.pad(x, 1024, mode="reflect")
    ref = np.stack([padded[t * 441:t * 441 + 2048] for t in range(1 + n // 441)])
    for family in backends.FAMILIES:
        with backends.force(family):
            frames = stft_lib.frame_signal(jnp.asarray(x), 2048, 441, 1 + n // 441)
        np.testing.assert_array_equal(np.asarray(frames), ref, err_msg=family)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_the_tpu_s_framing_gives_the_same_frames(pad_mode):
    """The TPU's form (the padded signal built by slices, a flip and an update
    at each signal's end, no gather; cut into frames by static slices of
    hop-sample blocks, ``vf_jax.backends``), run on CPU: the very frames of the
    default form in every frame that counts (``1 + length // hop``), for rows
    of their own true lengths (as restoring a folder), one traced length, a
    static one, hops that do and do not divide ``n_fft``, and batches with a
    signal shorter than the padding (reflected repeatedly, the other branch)."""
    from vf_jax import backends
    x = jnp.asarray(np.stack([speechlike(9000, 44100, seed=s) for s in range(3)]))
    cases = {"rows": jnp.asarray([9000, 5000, 2100]), "a short row": jnp.asarray([9000, 5000, 300]),
             "one traced": jnp.asarray(7001), "static": 6500}
    for n_fft, hop in ((2048, 441), (2048, 512), (512, 128), (1024, 300)):
        frames = 1 + 9000 // hop
        for name, lengths in cases.items():
            def framed():     # a fresh function: jax.jit keeps one trace per function
                if isinstance(lengths, int):
                    return jax.jit(lambda v: stft_lib.frame_signal(
                        v, n_fft, hop, frames, lengths, pad_mode))(x)
                return jax.jit(lambda v, n: stft_lib.frame_signal(
                    v, n_fft, hop, frames, n, pad_mode))(x, lengths)
            expected = np.asarray(framed())
            with backends.force("tpu"):
                got = np.asarray(framed())
            counts = np.broadcast_to(1 + np.asarray(lengths) // hop, (3,))
            for row, count in enumerate(counts):
                np.testing.assert_array_equal(got[row, :count], expected[row, :count],
                                              err_msg=f"{name}, n_fft {n_fft}, hop {hop}")


@pytest.mark.parametrize("length", [44100, 44100 + 300])
def test_istft_inverts_and_matches_librosa(length):
    x = speechlike(length, 44100)
    spec = stft_lib.stft(x, 2048, 512, pad_mode="constant")
    back = stft_lib.istft(spec, 512, length)
    ref = librosa.istft(np.asarray(spec).T, hop_length=512, length=length)
    assert max_rel_err(back, ref) <= 1e-5
    assert max_rel_err(back, x) <= 1e-5


def test_log_and_exp_clamp():
    x = jnp.array([0.0, 1e-9, 1.0, 100.0])
    np.testing.assert_allclose(mel_lib.to_log(x), [-8, -8, 0, 2], rtol=1e-6)
    np.testing.assert_allclose(mel_lib.from_log(jnp.array([-1.0, 2.0, 7.0])),
                               [0.1, 100.0, 1e5], rtol=1e-6)

"""Mel inversion for listening (Griffin-Lim) against scipy's NNLS and librosa."""

import jax.numpy as jnp
import librosa
import numpy as np
import pytest
from scipy.optimize import nnls

from vf_jax.audio import mel as mel_lib
from vf_jax.audio import mel_inversion
from vf_jax.audio.synthetic import speech_like

FE = mel_lib.FRONT_ENDS[44100]


@pytest.fixture(scope="module")
def speech():
    x = speech_like(1.0, seed=3)
    mel, mag = mel_lib.mel_spectrogram(jnp.asarray(x), FE)
    return x, np.asarray(mel), np.asarray(mag)


def test_magnitude_from_mel_is_a_non_negative_least_squares_solution(speech):
    _, mel, _ = speech
    mag = np.asarray(mel_inversion.magnitude_from_mel(mel, FE))
    fb = FE.filterbank().astype(np.float64)
    assert mag.shape == (mel.shape[0], FE.n_freq) and mag.min() >= 0.0
    # The system is under-determined (1025 unknowns, 128 equations): scipy's
    # active-set NNLS fits exactly; ours fits to within 0.1 % of the mel.
    for t in (5, mel.shape[0] // 2, mel.shape[0] - 3):
        exact, residual = nnls(fb.T, mel[t].astype(np.float64))
        assert residual < 1e-6 * np.linalg.norm(mel[t])
        ours = np.linalg.norm(fb.T @ mag[t] - mel[t])
        assert ours <= 1e-3 * np.linalg.norm(mel[t])


def test_griffin_lim_matches_librosa(speech):
    x, _, mag = speech
    ours = np.asarray(mel_inversion.griffin_lim_phase(jnp.asarray(mag), FE, len(x), n_iter=6))
    ref = librosa.griffinlim(mag.T, n_iter=6, hop_length=FE.hop, win_length=FE.n_fft,
                             n_fft=FE.n_fft, center=True, pad_mode="reflect", length=len(x),
                             init=None, momentum=0.99)
    assert np.max(np.abs(ours - ref)) < 1e-4 * np.max(np.abs(ref))


def test_griffin_lim_from_log_mel_reproduces_the_mel(speech):
    x, mel, _ = speech
    wav = np.asarray(mel_inversion.griffin_lim(mel_lib.to_log(jnp.asarray(mel)), FE, len(x)))
    assert wav.shape == x.shape and np.max(np.abs(wav)) <= 0.99 + 1e-6
    again, _ = mel_lib.mel_spectrogram(jnp.asarray(wav), FE)
    again = np.asarray(again)
    gain = np.sum(again * mel) / np.sum(again * again)     # the peak scaling
    assert np.linalg.norm(gain * again - mel) < 0.25 * np.linalg.norm(mel)

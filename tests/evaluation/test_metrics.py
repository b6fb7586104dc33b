"""The paper's metrics: known values, closed forms, librosa and an independent
SSIM, and the jnp versions against the NumPy ones."""

import jax.numpy as jnp
import librosa
import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from vf_jax.audio.synthetic import speech_like
from vf_jax.evaluation import metrics

SR = 44100


@pytest.fixture(scope="module")
def speech():
    clean = speech_like(2.0, seed=5)
    rng = np.random.default_rng(0)
    noisy = (clean + 0.05 * rng.standard_normal(len(clean))).astype(np.float32)
    return clean, noisy


@pytest.mark.parametrize("rate", [44100, 16000])
def test_spectrograms_match_librosa(rate):
    x = np.random.default_rng(1).standard_normal(rate).astype(np.float32)
    n_fft, hop, n_mels = metrics.SPECTRAL_SETTINGS[rate]
    mag, mel = metrics.spectrograms(x, rate)
    ref = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, center=True, pad_mode="reflect")).T
    np.testing.assert_allclose(mag, ref, rtol=1e-4, atol=1e-3)
    # torchaudio's MelScale (the original's): HTK triangles over bins spaced
    # linspace(0, rate / 2, n_fft // 2 + 1) (for odd n_fft not quite rfftfreq).
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = librosa.mel_frequencies(n_mels + 2, fmin=0, fmax=rate / 2, htk=True)
    up = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    down = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    fb = np.maximum(0, np.minimum(up, down))
    np.testing.assert_allclose(mel, ref @ fb.T, rtol=1e-4, atol=1e-2)


def test_identical_signals(speech):
    clean, _ = speech
    m = metrics.all_metrics(clean, clean, SR)
    assert m["lsd"] == 0.0 and m["lsd_mel"] == 0.0
    assert m["si_sdr"] == float("inf")
    assert m["sispnr"] > 100 and m["sispnr_mel"] > 100      # limited only by eps
    assert m["ssim"] == pytest.approx(1.0) and m["ssim_mel"] == pytest.approx(1.0)
    assert m["pesq_wb"] == pytest.approx(4.644, abs=1e-3)    # wide-band PESQ's maximum
    assert m["stoi"] == pytest.approx(1.0, abs=1e-6)


def test_noise_lowers_every_reference_metric_and_dnsmos_background(speech):
    clean, noisy = speech
    same = metrics.all_metrics(clean, clean, SR)
    worse = metrics.all_metrics(clean, noisy, SR)
    for k in ("pesq_wb", "stoi", "ssim", "ssim_mel", "sispnr", "sispnr_mel", "si_sdr"):
        assert worse[k] < same[k], k
    for k in ("lsd", "lsd_mel"):
        assert worse[k] > same[k], k
    assert worse["dnsmos_bak"] < same["dnsmos_bak"]
    for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"):
        assert 1.0 <= same[k] <= 5.0


def test_lsd_of_a_gain_and_sispnr_of_an_orthogonal_error_in_closed_form():
    rng = np.random.default_rng(2)
    ref = rng.uniform(0.5, 2.0, size=(40, 30))
    # A gain g moves every log10 power by 2 log10 g.
    assert metrics.lsd_spectra(ref, 3.0 * ref) == pytest.approx(2 * np.log10(3.0), rel=1e-6)
    # An error orthogonal to the reference: 10 log10(|s|^2 / |n|^2).
    n = rng.normal(size=ref.shape)
    n -= np.sum(n * ref) / np.sum(ref * ref) * ref
    expected = 10 * np.log10(np.sum(ref ** 2) / np.sum(n ** 2))
    assert metrics.sispnr(ref, ref + n) == pytest.approx(expected, rel=1e-6)
    assert metrics.sispnr(ref, 5.0 * (ref + n)) == pytest.approx(expected, rel=1e-6)


def independent_ssim(x, y, win=7, data_range=2.0):
    """Wang et al. 2004 with a uniform window and sample covariances, mean over
    the windows that fit inside."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    norm = win * win / (win * win - 1)
    mx, my = uniform_filter(x, win), uniform_filter(y, win)
    vx = norm * (uniform_filter(x * x, win) - mx * mx)
    vy = norm * (uniform_filter(y * y, win) - my * my)
    cxy = norm * (uniform_filter(x * y, win) - mx * my)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    pad = win // 2
    return float(s[pad:-pad, pad:-pad].mean())


def test_ssim_agrees_with_an_independent_implementation(speech):
    clean, noisy = speech
    a, _ = metrics.spectrograms(clean, SR)
    b, _ = metrics.spectrograms(noisy, SR)
    assert metrics.ssim(a, b) == pytest.approx(independent_ssim(b, a), rel=1e-6)


def test_jax_versions_equal_numpy():
    rng = np.random.default_rng(3)
    ref = rng.uniform(1e-3, 2.0, size=(3, 50, 64))
    est = ref * rng.uniform(0.5, 1.5, size=ref.shape)
    lsd = np.asarray(metrics.lsd_spectra_jax(jnp.asarray(ref, jnp.float32),
                                             jnp.asarray(est, jnp.float32)))
    sp = np.asarray(metrics.sispnr_jax(jnp.asarray(np.log10(ref), jnp.float32),
                                       jnp.asarray(np.log10(est), jnp.float32)))
    for i in range(3):
        assert lsd[i] == pytest.approx(metrics.lsd_spectra(ref[i], est[i]), rel=1e-4)
        assert sp[i] == pytest.approx(metrics.sispnr(np.log10(ref[i]), np.log10(est[i])),
                                      rel=1e-4)
    s = rng.standard_normal((2, 4000))
    e = 0.5 * s + 0.1 * rng.standard_normal((2, 4000))
    sd = np.asarray(metrics.si_sdr_jax(jnp.asarray(s, jnp.float32), jnp.asarray(e, jnp.float32)))
    for i in range(2):
        assert sd[i] == pytest.approx(metrics.si_sdr(s[i], e[i]), abs=1e-3)
    assert np.isinf(float(metrics.si_sdr_jax(jnp.asarray(s[0]), jnp.asarray(s[0]))))
    assert np.isnan(float(metrics.si_sdr_jax(jnp.zeros(100), jnp.asarray(s[0, :100]))))


def test_silent_reference_leaves_metrics_undefined_not_a_crash(speech):
    _, noisy = speech
    m = metrics.all_metrics(np.zeros_like(noisy), noisy, SR)
    for k in ("lsd", "sispnr", "ssim", "si_sdr", "pesq_wb", "stoi"):
        assert np.isnan(m[k]), k
    assert np.isfinite(m["dnsmos_ovrl"])


def test_other_rates_and_lengths_are_aligned(speech):
    clean, noisy = speech
    c16 = librosa.resample(clean, orig_sr=SR, target_sr=16000)
    n16 = librosa.resample(noisy, orig_sr=SR, target_sr=16000)
    m = metrics.all_metrics(c16, n16[:-100], 16000, with_dnsmos=False)
    assert all(np.isfinite(v) for v in m.values()) and "dnsmos_ovrl" not in m
    m22 = metrics.all_metrics(librosa.resample(clean, orig_sr=SR, target_sr=22050),
                              librosa.resample(noisy, orig_sr=SR, target_sr=22050), 22050,
                              with_dnsmos=False)
    assert all(np.isfinite(v) for v in m22.values())

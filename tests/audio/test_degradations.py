"""On-device degradations against scipy references and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal as sps

from vf_jax.audio import degradations as deg
from vf_jax.audio import effects, filters
from vf_jax.audio.synthetic import speech_like

SR = 44100
L = 3 * SR



def db(v):
    return 20 * np.log10(np.maximum(np.abs(v), 1e-12))


def scipy_lowpass(family, order, cutoff):
    wn = cutoff / (SR / 2)
    return {"butter": lambda: sps.butter(order, wn, output="sos"),
            "cheby1": lambda: sps.cheby1(order, 0.1, wn, output="sos"),
            "ellip": lambda: sps.ellip(order, 0.1, 60, wn, output="sos"),
            "bessel": lambda: sps.bessel(order, wn, output="sos")}[family]()


@pytest.mark.parametrize("family", filters.IIR_FAMILIES)
@pytest.mark.parametrize("order,cutoff", [(2, 750.0), (5, 3100.0), (8, 9000.0), (9, 20500.0)])
def test_zero_phase_lowpass_matches_sosfiltfilt(family, order, cutoff):
    """The filtered impulse's magnitude response: within 0.5 dB of sosfiltfilt's
    in the pass band, at least as deep in the stop band (down to -100 dB)."""
    impulse = np.zeros(L, np.float32)
    impulse[L // 2] = 1.0
    ref = sps.sosfiltfilt(scipy_lowpass(family, order, cutoff), impulse.astype(np.float64))
    ours = jax.jit(effects.band_limit)(jnp.asarray(impulse), filters.BAND_LIMITS.index(family),
                                   cutoff, order)
    n = 1 << 19
    f = np.fft.rfftfreq(n, 1 / SR)
    ref_db, ours_db = db(np.fft.rfft(ref, n)), db(np.fft.rfft(np.asarray(ours), n))
    passband = f < 0.9 * cutoff
    assert np.max(np.abs(ours_db[passband] - ref_db[passband])) < 0.5
    stopband = ref_db < -3
    assert np.all(np.maximum(ours_db[stopband], -100) <= np.maximum(ref_db[stopband], -100) + 0.5)
    # Zero phase: the impulse stays centred and symmetric.
    out = np.asarray(ours)
    np.testing.assert_allclose(out[L // 2 - 500:L // 2], out[L // 2 + 500:L // 2:-1], atol=1e-6)


@pytest.mark.parametrize("cutoff", [900.0, 4000.0, 11025.0])
def test_resample_band_limit_matches_resample_poly(cutoff):
    """"stft": scipy's resample_poly down to twice the cut-off and back up."""
    x = np.random.default_rng(1).standard_normal(L).astype(np.float32)
    low = int(cutoff / (SR / 2) * SR)
    ref = sps.resample_poly(sps.resample_poly(x.astype(np.float64), low, SR), SR, low)[:L]
    stft = filters.BAND_LIMITS.index("stft")
    ours = np.asarray(effects.band_limit(jnp.asarray(x), stft, cutoff, 2))
    f, p_ref = sps.welch(ref, SR, nperseg=4096)
    _, p_ours = sps.welch(ours, SR, nperseg=4096)
    passband = f < 0.85 * cutoff
    assert np.max(np.abs(10 * np.log10(p_ours[passband] / p_ref[passband]))) < 0.5
    stopband = f > 1.2 * cutoff
    assert np.all(10 * np.log10(p_ours[stopband] / np.mean(p_ours[passband])) < -40)


def test_stft_hard_zeroes_bins_above_cutoff():
    x = jnp.asarray(speech_like())
    cutoff = 5000.0
    y = effects.band_limit(x, filters.BAND_LIMITS.index("stft_hard"), cutoff, 2)
    f, p_x = sps.welch(np.asarray(x), SR, nperseg=2048)
    _, p_y = sps.welch(np.asarray(y), SR, nperseg=2048)
    assert np.all(10 * np.log10(p_y[f > cutoff * 1.05] / np.max(p_x)) < -60)
    passband = (f > 200) & (f < 0.9 * cutoff)
    assert np.max(np.abs(10 * np.log10(p_y[passband] / p_x[passband]))) < 0.5


def test_sox_lowpass_is_the_prewarped_second_order_butterworth():
    """The cookbook low-pass with Q = 1/sqrt(2) is scipy's butter(2) (causal)."""
    x = speech_like()
    for cutoff in (4000.0, 15000.0):
        ref = sps.lfilter(*sps.butter(2, cutoff / (SR / 2)), x.astype(np.float64))
        ours = np.asarray(filters.apply_biquad(jnp.asarray(x), "lowpass", cutoff))
        np.testing.assert_allclose(ours, ref, atol=2e-5)
    ref = sps.lfilter(*sps.butter(2, 1000 / (SR / 2), btype="high"), x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(filters.apply_biquad(jnp.asarray(x), "highpass", 1000.0)),
                               ref, atol=2e-5)


@pytest.mark.parametrize("kind", ["bass", "treble"])
def test_shelves_reach_their_gain(kind):
    """Closed form: a shelf's gain is ``gain_db`` at its end of the band, 0 dB at
    the other (to 0.02 dB: float32 coefficients of a 100 Hz shelf cancel)."""
    b, a = filters.biquad(kind, 100.0 if kind == "bass" else 3000.0, 6.0)
    w, h = sps.freqz(np.asarray(b), np.asarray(a), worN=[0.0, np.pi])
    low, high = db(h)
    assert low == pytest.approx(6.0 if kind == "bass" else 0.0, abs=0.02)
    assert high == pytest.approx(0.0 if kind == "bass" else 6.0, abs=0.02)


def test_reverberation_equals_fftconvolve():
    rng = np.random.default_rng(2)
    x = speech_like()
    rir = (rng.standard_normal(SR // 2) * np.exp(-np.arange(SR // 2) / 3000)).astype(np.float32)
    for gain in (0.01, 1.0):                 # below and above the 0.99 peak limit
        ref = sps.fftconvolve(x.astype(np.float64), gain * rir.astype(np.float64))[:L]
        if np.max(np.abs(ref)) > 0.99:
            ref = ref / np.max(np.abs(ref)) * 0.98
        ours = np.asarray(jax.jit(effects.reverberate)(jnp.asarray(x), jnp.asarray(gain * rir)))
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.max(np.abs(ours)) == pytest.approx(0.98, abs=1e-6)


@pytest.mark.parametrize("params", [(0.5, 0.5, 0.5), (1.0, 0.0, 1.0), (0.2, 1.0, 0.3)])
def test_freeverb_matches_its_recursions(params):
    """Freeverb's combs and allpasses run as the recursions they are
    (``scipy.signal.lfilter``, float64) on an impulse."""
    reverberance, damping, room_scale = params
    feedback, damp = 0.7 + 0.28 * reverberance, 0.4 * damping
    scale = 0.1 + 0.9 * room_scale
    n = 40_000
    impulse = np.zeros(n)
    impulse[0] = effects.FREEVERB_INPUT_GAIN
    combs = np.zeros(n)
    for tuning in effects.FREEVERB_COMBS:
        d = int(round(tuning * scale))
        b = np.zeros(d + 2)
        b[d:] = [1.0, -damp]
        a = np.zeros(d + 1)
        a[:2] = [1.0, -damp]
        a[d] -= feedback * (1 - damp)
        combs += sps.lfilter(b, a, impulse)
    out = combs
    for tuning in effects.FREEVERB_ALLPASSES:
        d = int(round(tuning * scale))
        g = effects.FREEVERB_ALLPASS_FEEDBACK
        b, a = np.zeros(d + 1), np.zeros(d + 1)
        b[0], b[d], a[0], a[d] = -1.0, 1.0 + g, 1.0, -g
        out = sps.lfilter(b, a, out)
    ours = np.asarray(effects.freeverb_impulse_response(*params))[:n]
    assert np.max(np.abs(ours - out)) < 1e-3 * np.max(np.abs(out))


@pytest.mark.parametrize("level", ["mean_abs", "rms"])
def test_noise_reaches_target_snr(level):
    rng = np.random.default_rng(3)
    speech = jnp.asarray(speech_like())
    noise = jnp.asarray(rng.standard_normal(L).astype(np.float32) * 3.0)
    measure = {"mean_abs": lambda v: np.mean(np.abs(v)),
               "rms": lambda v: np.sqrt(np.mean(np.square(v)))}[level]
    for snr in (-5.0, 0.0, 17.3, 40.0):
        scaled = np.asarray(effects.match_noise(speech, noise, snr, level))
        achieved = 20 * np.log10(measure(np.asarray(speech)) / measure(scaled))
        assert achieved == pytest.approx(snr, abs=0.1)


def test_quiet_speech_keeps_peak_normalised_noise():
    """The original matches levels only above a mean absolute level of 0.02."""
    speech = jnp.asarray(speech_like() * 0.01)
    noise = jnp.asarray(np.random.default_rng(4).standard_normal(L).astype(np.float32))
    scaled = np.asarray(effects.match_noise(speech, noise, 20.0))
    assert np.max(np.abs(scaled)) == pytest.approx(0.1, rel=1e-5)


def test_clip_and_quantise_closed_forms():
    x = jnp.asarray(speech_like())
    top = float(np.max(np.abs(x)))
    y = np.asarray(effects.clip(x, 4.0))
    assert np.max(np.abs(y)) == pytest.approx(top / 4, rel=1e-6)
    np.testing.assert_array_equal(y[np.abs(x) < top / 4], np.asarray(x)[np.abs(x) < top / 4])
    for bits in (4, 7):
        q = np.asarray(effects.quantise(x, bits))
        levels = 2 ** bits
        grid = np.linspace(-1 + 1 / levels, 1 - 1 / levels, levels) * top
        assert set(np.unique(q)) <= set(grid.astype(np.float32))
        # The original's rule for samples above the lowest level.
        xn = np.asarray(x, np.float64)
        above = xn > grid[0]
        expected = grid[np.digitize(xn, grid, right=True) - 1]
        np.testing.assert_allclose(q[above], expected[above], atol=1e-6)


def test_effect_frequencies_follow_the_config():
    """Over 10 000 keys each effect's frequency is within 3 standard errors of
    its probability (the noise's band limit: 0.5 of the band-limited ones)."""
    config = deg.gsr_config()
    config.quantise.prob = 0.1          # off-by-default effects, switched on
    config.freeverb.prob = 0.05
    n = 10_000
    params = jax.jit(jax.vmap(lambda k: deg.sample_gsr(k, config)))(
        jax.random.split(jax.random.PRNGKey(0), n))
    expected = {"speech_lowpass_on": 0.25, "clip_on": 0.2, "reverb_on": 0.3,
                "band_limit_on": 1.0, "noise_on": 1.0, "quantise_on": 0.1, "freeverb_on": 0.05, "highpass_on": 0.0,
                "speech_second_resample": 0.5, "noise_band_limit": 0.5}
    for name, p in expected.items():
        freq = float(np.mean(np.asarray(params[name])))
        se = np.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(freq - p) <= 3 * se + 1e-12, (name, freq, p)
    kinds = np.bincount(np.asarray(params["kind"]), minlength=len(filters.BAND_LIMITS)) / n
    assert np.all(np.abs(kinds - 1 / 6) <= 3 * np.sqrt(1 / 6 * 5 / 6 / n))
    orders = np.asarray(params["order"])
    assert orders.min() == 2 and orders.max() == 9
    cut = np.asarray(params["cutoff"])
    assert cut.min() >= 750 and cut.max() < 22050
    snr = np.asarray(params["snr_db"])
    assert snr.min() >= -5 and snr.max() < 40


def test_gsr_pipeline_batched_deterministic_and_bounded():
    rng = np.random.default_rng(5)
    batch = 4
    speech = jnp.asarray(np.stack([speech_like(seed=s) for s in range(batch)]))
    noise = jnp.asarray(rng.standard_normal((batch, L)).astype(np.float32))
    rir = jnp.asarray((rng.standard_normal((batch, 8000)) * np.exp(-np.arange(8000) / 800))
                      .astype(np.float32))
    degrade = deg.gsr_degrader()
    keys = jax.random.split(jax.random.PRNGKey(7), batch)
    noisy, target = degrade(keys, speech, noise, rir)
    again, _ = degrade(keys, speech, noise, rir)
    other, _ = degrade(jax.random.split(jax.random.PRNGKey(8), batch), speech, noise, rir)
    assert noisy.shape == target.shape == (batch, L)
    np.testing.assert_array_equal(np.asarray(noisy), np.asarray(again))
    assert not np.allclose(np.asarray(noisy), np.asarray(other))
    assert np.all(np.isfinite(np.asarray(noisy)))
    peaks = np.max(np.abs(np.concatenate([np.asarray(noisy), np.asarray(target)], 1)), 1)
    assert np.all(peaks <= 1.0 + 1e-6) and np.all(peaks >= 0.3 - 1e-6)
    # The target is the clean speech, only scaled.
    for b in range(batch):
        ratio = np.asarray(target[b]) / np.where(np.abs(speech[b]) > 1e-3, speech[b], np.nan)
        assert np.nanstd(ratio) < 1e-5 * np.nanmean(np.abs(ratio))


def test_presets_isolate_one_degradation():
    x = jnp.asarray(speech_like())
    noise = jnp.asarray(np.random.default_rng(6).standard_normal(L).astype(np.float32))
    rir = jnp.zeros(100).at[0].set(1.0)
    key = jax.random.PRNGKey(3)
    for name in ("declip", "sr", "denoise", "derev"):
        config = deg.preset(name)
        params = deg.sample_gsr(key, config)
        on = {k for k, v in params.items() if k.endswith("_on") and bool(v)}
        assert on == {{"declip": "clip_on", "sr": "band_limit_on", "denoise": "noise_on",
                       "derev": "reverb_on"}[name]}
    # Reverberation with a unit impulse changes nothing but the level.
    noisy, target = deg.apply_gsr(deg.sample_gsr(key, deg.preset("derev")), x, noise, rir,
                                  deg.preset("derev"))
    np.testing.assert_allclose(np.asarray(noisy), np.asarray(target), atol=1e-6)


def test_every_effect_switched_on_runs_batched():
    """The off-by-default effects compose too: certain, under jit and vmap."""
    config = deg.gsr_config()
    for name in ("speech_lowpass", "clip", "reverb", "freeverb", "quantise", "highpass",
                 "treble", "bass", "fade"):
        getattr(config, name).prob = 1.0
    config.noise.prob = 0.0             # so that the fades show at the ends
    speech = jnp.asarray(np.stack([speech_like(seed=s) for s in range(2)]))
    rir = jnp.zeros((2, 1000)).at[:, 0].set(1.0)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    noisy, target = deg.gsr_degrader(config)(keys, speech, 0.1 * speech[::-1], rir)
    params = jax.vmap(lambda k: deg.sample_gsr(k, config))(keys)
    assert all(bool(np.all(params[f"{n}_on"])) for n in ("freeverb", "fade", "bass"))
    assert np.all(np.isfinite(np.asarray(noisy)))
    assert np.all(np.max(np.abs(np.asarray(noisy)), axis=1) <= 1.0 + 1e-6)
    # Faded at both ends, so the degraded signal starts and ends near silence.
    assert np.all(np.abs(np.asarray(noisy))[:, :10].max(axis=1) < 0.05)


def test_tpu_fft_lengths_give_the_same_degradations():
    """The TPU's forms (power-of-two FFT lengths, ``vf_jax.backends``), run on
    CPU, equal the default ones (the fastest lengths) with every FFT-based
    effect on: only the rounding and the filters' far tails differ."""
    from vf_jax import backends
    config = deg.gsr_config()
    for name in ("speech_lowpass", "reverb", "freeverb", "highpass", "treble", "bass"):
        getattr(config, name).prob = 1.0
    config.band_limit.noise_prob = 1.0
    rng = np.random.default_rng(9)
    speech = jnp.asarray(np.stack([speech_like(seed=s) for s in range(3)]))
    noise = jnp.asarray(rng.standard_normal((3, L)).astype(np.float32))
    rir = jnp.asarray((rng.standard_normal((3, 8000)) * np.exp(-np.arange(8000) / 800))
                      .astype(np.float32))
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    kinds = jax.vmap(lambda k: deg.sample_gsr(k, config))(keys)["kind"]
    assert len(set(np.asarray(kinds).tolist())) > 1
    default = deg.gsr_degrader(config)(keys, speech, noise, rir)
    with backends.force("tpu"):
        tpu = deg.gsr_degrader(config)(keys, speech, noise, rir)
    assert filters.fft_size(L, "tpu") == 1 << 18 and filters.fft_size(L) < 1 << 18
    for a, b in zip(default, tpu):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=2e-5)

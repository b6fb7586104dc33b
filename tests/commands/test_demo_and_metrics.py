"""The demo command and the small metric set it reports."""

import os

import numpy as np
import pytest
import soundfile as sf

from vf_jax.cli import main
from vf_jax.evaluation import metrics


def test_si_sdr_closed_form():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(20000)
    n = rng.standard_normal(20000)
    s, n = s - s.mean(), n - n.mean()                  # SI-SDR removes means
    n -= np.dot(n, s) / np.dot(s, s) * s                # orthogonal to s
    n *= np.sqrt(np.dot(s, s) / np.dot(n, n) / 10 ** (12.5 / 10))
    assert abs(metrics.si_sdr(s, 0.3 * (s + n)) - 12.5) < 1e-9
    assert metrics.si_sdr(s, 2.0 * s) == float("inf")
    assert np.isnan(metrics.si_sdr(np.zeros(100), s[:100]))


def test_lsd_zero_for_identical_and_closed_form_for_gain():
    x = np.random.default_rng(1).standard_normal(44100).astype(np.float32)
    assert metrics.lsd(x, x) == 0.0           # identical: exactly 0
    # A gain g changes every log10 power by 2 log10 g.
    assert abs(metrics.lsd(x, 10.0 * x) - 2.0) < 1e-4


def test_demo_without_weights_says_so_and_writes_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", str(tmp_path / "none"),
                 "--train-seconds", "0"]) == 0
    err = capsys.readouterr().err
    assert "No converted weights" in err and "does not restore" in err
    assert "python -m vf_jax weights download" in err
    assert sorted(os.listdir(out)) == ["clean.wav", "degraded.wav", "metrics.md",
                                       "spectrograms.png"]
    clean, sr = sf.read(out / "clean.wav")
    degraded, _ = sf.read(out / "degraded.wav")
    assert sr == 44100 and len(clean) == len(degraded) > 44100 * 5
    assert metrics.si_sdr(clean, degraded) < 20
    assert (out / "spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_without_weights_trains_the_tiny_model_and_restores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", str(tmp_path / "none"),
                 "--train-steps", "150"]) == 0
    err = capsys.readouterr().err
    assert "trains a tiny" in err and "not VoiceFixer's quality" in err
    clean, sr = sf.read(out / "clean.wav")
    degraded, _ = sf.read(out / "degraded.wav")
    restored, _ = sf.read(out / "restored.wav")
    assert sr == 44100 and len(restored) == len(clean)
    # Even a few seconds of training on the clip bring its spectrum much closer.
    assert metrics.lsd(clean, restored) < 0.6 * metrics.lsd(clean, degraded)
    assert "| restored (tiny model) |" in (out / "metrics.md").read_text()
    assert not os.path.exists(out / "checkpoints")       # the run folder was temporary


def test_demo_with_weights_restores(tmp_path, small_weights_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", small_weights_dir]) == 0
    restored, sr = sf.read(out / "restored.wav")
    degraded, _ = sf.read(out / "degraded.wav")
    assert sr == 44100 and len(restored) == len(degraded)
    assert "| restored |" in (out / "metrics.md").read_text()


def test_mel_lsd_closed_form_and_valid_frames():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 6, 128)).astype(np.float32)
    est = ref.copy()
    est[0] += 0.5                 # every bin off by 0.5 in log10 M: LSD = 2 * 0.5
    est[1, 4:] += 3.0             # only padding frames differ
    lsd = np.asarray(metrics.mel_lsd(ref, est, valid=np.array([6, 4])))
    np.testing.assert_allclose(lsd, [1.0, 0.0], atol=1e-6)
    assert float(metrics.mel_lsd(ref[1], est[1])) == pytest.approx(2 * 3.0 * 2 / 6, rel=1e-5)

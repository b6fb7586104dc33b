"""The demo command and the small metric set it reports."""

import os

import numpy as np
import soundfile as sf

from vf_jax import metrics
from vf_jax.cli import main


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
    assert metrics.lsd(x, x) == 0.0
    # A gain g changes every log10 power by 2 log10 g.
    assert abs(metrics.lsd(x, 10.0 * x) - 2.0) < 1e-4


def test_demo_without_weights_says_so_and_writes_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", str(tmp_path / "none")]) == 0
    err = capsys.readouterr().err
    assert "No converted weights" in err and "does not restore" in err
    assert sorted(os.listdir(out)) == ["clean.wav", "degraded.wav", "metrics.md",
                                       "spectrograms.png"]
    clean, sr = sf.read(out / "clean.wav")
    degraded, _ = sf.read(out / "degraded.wav")
    assert sr == 44100 and len(clean) == len(degraded) > 44100 * 5
    assert metrics.si_sdr(clean, degraded) < 20
    assert (out / "spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_with_weights_restores(tmp_path, weights_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", weights_dir]) == 0
    restored, sr = sf.read(out / "restored.wav")
    degraded, _ = sf.read(out / "degraded.wav")
    assert sr == 44100 and len(restored) == len(degraded)
    assert "| restored |" in (out / "metrics.md").read_text()

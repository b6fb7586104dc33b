"""``python -m vf_jax evaluate``: pairing, alignment notes, per-subset means with
confidence intervals, bad files listed, reports written whole."""

import csv
import json
import os

import librosa
import numpy as np
import pytest
import soundfile as sf
from scipy import stats

from vf_jax.audio.synthetic import speech_like
from vf_jax.cli import main

SR = 44100


@pytest.fixture()
def tree(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    rng = np.random.default_rng(0)
    for sub in ("denoise", "sr"):
        (ref / sub).mkdir(parents=True)
        (est / sub).mkdir(parents=True)
        for i in range(3):
            x = speech_like(1.0, seed=i)
            sf.write(ref / sub / f"f{i}.wav", x, SR)
            sf.write(est / sub / f"f{i}.flac", x + 0.02 * (i + 1) * rng.standard_normal(len(x)), SR)
    sf.write(ref / "only_ref.wav", speech_like(0.5), SR)
    sf.write(ref / "denoise" / "broken.wav", speech_like(0.5), SR)
    (est / "denoise" / "broken.wav").write_text("not audio")
    sf.write(ref / "silent.wav", np.zeros(SR // 2), SR)
    sf.write(est / "silent.wav", speech_like(0.5)[:20000], SR)
    x = speech_like(1.0, seed=9)
    sf.write(ref / "sr" / "rate.wav", x, SR)
    sf.write(est / "sr" / "rate.wav", librosa.resample(x, orig_sr=SR, target_sr=16000), 16000)
    return ref, est, tmp_path / "report"


def test_report_pairs_notes_and_subset_statistics(tree, capsys):
    ref, est, out = tree
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--out", str(out),
                 "--no-dnsmos", "--workers", "2", "--quiet"]) == 0
    rows = list(csv.DictReader(open(out / "per_file.csv")))
    assert [r["file"] for r in rows] == ["denoise/broken", "denoise/f0", "denoise/f1",
                                         "denoise/f2", "silent", "sr/f0", "sr/f1", "sr/f2",
                                         "sr/rate"]
    report = json.load(open(out / "summary.json"))
    assert report["unpaired"] == {"reference_only": ["only_ref"], "estimate_only": []}
    assert "cannot read" in report["unreadable"]["denoise/broken"]
    assert "resampled 16000 -> 44100" in report["notes"]["sr/rate"]
    assert "cut to the shorter" in report["notes"]["silent"]
    assert "silent reference" in report["notes"]["silent"]
    # Per-subset mean and Student-t 95 % interval of the per-file values.
    lsd = np.array([float(r["lsd"]) for r in rows if r["subset"] == "denoise" and r["lsd"]])
    got = report["summary"]["denoise"]["lsd"]
    assert got["n"] == 3 and got["mean"] == pytest.approx(lsd.mean(), rel=1e-9)
    half = stats.t.ppf(0.975, 2) * lsd.std(ddof=1) / np.sqrt(3)
    assert got["ci95"] == pytest.approx(half, rel=1e-9)
    # More noise, worse scores: the per-file ordering survives the pipeline.
    pesq = [float(r["pesq_wb"]) for r in rows if r["file"] in ("denoise/f0", "denoise/f1",
                                                                "denoise/f2")]
    assert pesq[0] > pesq[1] > pesq[2]
    # The silent reference is undefined, not a crash; it does not enter the means.
    assert report["summary"]["ref"]["pesq_wb"]["n"] == 0      # the top: named after --ref
    md = (out / "summary.md").read_text()
    assert "## denoise (3 files)" in md and "## Unreadable" in md and "## Unpaired" in md
    assert not [f for f in os.listdir(out) if "partial" in f]
    assert "gain" not in report and "_input" not in "".join(rows[0])   # no inputs given
    for name in ("figure_denoise.png", "figure_sr.png", "figure_ref.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_report_and_nothing_to_pair_fail_with_one_line(tree, tmp_path, capsys):
    ref, est, out = tree
    out.mkdir()
    (out / "summary.md").write_text("mine")
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--out", str(out),
                 "--no-dnsmos", "--quiet"]) == 1
    assert (out / "summary.md").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--ref", str(ref), "--est", str(empty), "--out",
                 str(tmp_path / "r2"), "--quiet"]) == 1
    assert main(["evaluate", "--ref", str(tmp_path / "missing"), "--est", str(est),
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("python -m vf_jax evaluate:") for line in err)
    assert "exists (use --overwrite)" in err[0] and "no files of" in err[1]


def test_restore_first_then_evaluate(tmp_path, small_weights_dir, capsys):
    """``--input`` and ``--weights``: restore the degraded files, then score them."""
    ref, degraded, out = tmp_path / "ref", tmp_path / "degraded", tmp_path / "report"
    (ref / "sub").mkdir(parents=True)
    (degraded / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        x = speech_like(1.0, seed=i)
        sf.write(ref / "sub" / f"u{i}.wav", x, SR)
        sf.write(degraded / "sub" / f"u{i}.wav", x + 0.05 * rng.standard_normal(len(x)), SR)
    assert main(["evaluate", "--ref", str(ref), "--input", str(degraded), "--weights",
                 small_weights_dir, "--out", str(out), "--no-dnsmos", "--workers", "1",
                 "--quiet"]) == 0
    assert sorted(os.listdir(out / "restored" / "sub")) == ["u0.wav", "u1.wav"]
    report = json.load(open(out / "summary.json"))
    assert report["summary"]["sub"]["lsd"]["n"] == 2
    assert (out / "figure_sub.png").exists()
    assert main(["evaluate", "--ref", str(ref), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    assert "either --est" in capsys.readouterr().err


def test_gsr_testset_by_name(tmp_path, small_weights_dir):
    """``--testset``: the built GSR test sets are exported, restored and scored
    per subset."""
    from vf_jax.data.__main__ import main as data_main
    src = tmp_path / "TestSets"
    x = speech_like(0.5, seed=4)
    for path, y in (("ALL_GSR/simulated/12_noisy.wav", 0.5 * x),
                    ("ALL_GSR/target/12_clean.wav", x),
                    ("DECLI/0.25/p232_005_clip.wav", np.clip(x, -0.1, 0.1)),
                    ("DECLI/GroundTruth/p232_005_mic1.wav", x)):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(src / path, y, SR)
    data = tmp_path / "tfds"
    assert data_main(["build", "testset", "--src", str(src), "--data-dir", str(data),
                      "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["evaluate", "--testset", str(data), "--weights", small_weights_dir, "--out",
                 str(out), "--no-dnsmos", "--workers", "1", "--quiet"]) == 0
    report = json.load(open(out / "summary.json"))
    assert sorted(report["summary"]) == ["all", "all_gsr", "declip_0.25"]
    assert not report["unpaired"]["reference_only"] and not report["unreadable"]


def test_degraded_inputs_are_scored_beside_the_estimates_with_the_gain(tmp_path, capsys):
    """A flat folder: its subset is named after the folder; the degraded
    inputs' scores sit beside the estimates', and the gain is their
    difference, per file pair where both are defined."""
    ref, est, noisy = tmp_path / "clean", tmp_path / "est", tmp_path / "noisy"
    for d in (ref, est, noisy):
        d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        x = speech_like(1.0, seed=i)
        sf.write(ref / f"u{i}.wav", x, SR)
        sf.write(noisy / f"u{i}.wav", x + 0.1 * rng.standard_normal(len(x)), SR)
        sf.write(est / f"u{i}.wav", x + 0.01 * rng.standard_normal(len(x)), SR)
    out = tmp_path / "report"
    assert main(["evaluate", "--ref", str(ref), "--est", str(est), "--input", str(noisy),
                 "--out", str(out), "--no-dnsmos", "--workers", "1", "--quiet"]) == 0
    report = json.load(open(out / "summary.json"))
    assert sorted(report["summary"]) == ["all", "clean"]
    rows = list(csv.DictReader(open(out / "per_file.csv")))
    for metric in ("si_sdr", "lsd"):
        est_mean = np.mean([float(r[metric]) for r in rows])
        in_mean = np.mean([float(r[f"{metric}_input"]) for r in rows])
        got = report["gain"]["clean"][metric]
        assert got["estimate"] == pytest.approx(est_mean, rel=1e-9)
        assert got["input"] == pytest.approx(in_mean, rel=1e-9)
        assert got["gain"] == pytest.approx(est_mean - in_mean, rel=1e-9) and got["n"] == 3
    # Less noise than the input: a positive SI-SDR gain, a negative LSD one.
    assert report["gain"]["clean"]["si_sdr"]["gain"] > 10
    assert report["gain"]["clean"]["lsd"]["gain"] < 0
    md = (out / "summary.md").read_text()
    assert "## clean (3 files)" in md and "degraded input" in md and "| gain |" in md
    assert (out / "figure_clean.png").exists() and not (out / "figure_top.png").exists()

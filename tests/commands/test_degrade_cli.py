"""``python -m vf_jax degrade``: files and folders, presets, seeds, bad input."""

import os

import numpy as np
import pytest
import soundfile as sf

from vf_jax.audio import synthetic
from vf_jax.audio.synthetic import speech_like
from vf_jax.cli import main

SR = 44100


def degrade(*args):
    return main(["degrade", *map(str, args), "--quiet"])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    sf.write(folder / "a.wav", speech_like(1.5, seed=1), SR, subtype="PCM_16")
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "b.flac", speech_like(1.0, seed=2)[::2], SR // 2)
    return folder


def test_file_is_degraded_deterministically_with_its_target(tmp_path, clean):
    out, target = tmp_path / "d.wav", tmp_path / "t.wav"
    assert degrade("-i", clean / "a.wav", "-o", out, "--target", target, "--seed", 3) == 0
    degraded, sr = sf.read(out)
    clean_target, _ = sf.read(target)
    x, _ = sf.read(clean / "a.wav")
    assert sr == SR and degraded.shape == x.shape == clean_target.shape
    assert 0.3 - 1e-3 <= max(np.abs(degraded).max(), np.abs(clean_target).max()) <= 1.0
    # The target is the clean input at the degraded output's level.
    mask = np.abs(x) > 0.05
    ratio = clean_target[mask] / x[mask]
    assert np.std(ratio) < 2e-3 * np.mean(ratio)
    assert not np.allclose(degraded, clean_target, atol=1e-2)
    again = tmp_path / "again.wav"
    assert degrade("-i", clean / "a.wav", "-o", again, "--seed", 3) == 0
    np.testing.assert_array_equal(sf.read(again)[0], degraded)
    other = tmp_path / "other.wav"
    assert degrade("-i", clean / "a.wav", "-o", other, "--seed", 4) == 0
    assert not np.array_equal(sf.read(other)[0], degraded)


def test_folder_tree_with_noise_and_rir_files(tmp_path, clean):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "noise.wav", synthetic.pink_noise(SR // 3, rng), SR)   # looped
    sf.write(tmp_path / "rir.wav", synthetic.room_impulse_response(rng, rt60=0.3), SR)
    out = tmp_path / "out"
    assert degrade("-i", clean, "-o", out, "--noise", tmp_path / "noise.wav",
                   "--rir", tmp_path / "rir.wav", "--preset", "denoise") == 0
    found = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out) for f in fs)
    assert found == ["a.wav", "sub/b.wav"]
    b, sr = sf.read(out / "sub" / "b.wav")
    assert sr == SR and len(b) == SR       # resampled from 22.05 kHz


def test_declip_preset_only_clips(tmp_path, clean):
    out, target = tmp_path / "c.wav", tmp_path / "t.wav"
    assert degrade("-i", clean / "a.wav", "-o", out, "--target", target,
                   "--preset", "declip", "--subtype", "FLOAT") == 0
    y, t = sf.read(out)[0], sf.read(target)[0]
    limit = np.abs(y).max()
    inside = np.abs(t) < limit * 0.999
    np.testing.assert_allclose(y[inside], t[inside], atol=1e-6)
    assert np.all(np.abs(t[~inside]) >= limit * 0.999) and np.any(~inside)


def test_bad_input_one_line_errors(tmp_path, clean, capsys):
    assert degrade("-i", tmp_path / "missing.wav", "-o", tmp_path / "x.wav") == 1
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    assert degrade("-i", tmp_path / "junk.wav", "-o", tmp_path / "x.wav") == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()
    existing = tmp_path / "exists.wav"
    existing.write_bytes(b"keep")
    assert degrade("-i", clean / "a.wav", "-o", existing) == 1
    assert existing.read_bytes() == b"keep"
    assert degrade("-i", clean / "a.wav", "-o", tmp_path / "y.wav",
                   "--noise", tmp_path / "no_noise_here") == 1
    assert "not found" in capsys.readouterr().err

"""Restoring files and folders: formats, rates, channels, long inputs, bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from vf_jax.audio.synthetic import voiced_signal
from vf_jax.cli import main
from vf_jax.models.resunet import padded_frames
from vf_jax.restoration import buckets, networks, weights, windows
from vf_jax.restoration.restorer import Restorer

from helpers import ROOT  # noqa: E402

SR = 44100


# Restoring's behaviour is tested with small networks (seeded VF-BiGRU and a
# small generator, conftest.small_weights_dir); the bucket padding with the
# released analysis network, and parity with the original in test_parity.py.
@pytest.fixture(scope="module")
def restorer(small_weights_dir):
    return Restorer.from_folder(small_weights_dir)


@pytest.fixture(scope="module")
def released(weights_dir):
    return Restorer.from_folder(weights_dir)


def run_cli(*args):
    return main(["restore", *map(str, args), "--quiet"])


def test_restore_file_writes_16bit_44k_same_length(tmp_path, small_weights_dir, restorer):
    x = voiced_signal(1.3)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, SR, subtype="PCM_16")
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", dst) == 0
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert info.frames == len(x)
    expected = restorer.restore(sf.read(src, dtype="float32")[0], SR)
    got = sf.read(dst, dtype="float32")[0]
    assert np.max(np.abs(got - expected)) <= 1.0 / 32768 + 1e-6


def test_8k_stereo_is_resampled_and_restored_per_channel(tmp_path, small_weights_dir, restorer):
    rng = np.random.default_rng(0)
    stereo = np.stack([voiced_signal(0.9)[::5][:7000], 0.1 * rng.standard_normal(7000)], 1)
    src, dst = tmp_path / "stereo8k.wav", tmp_path / "stereo_out.flac"
    sf.write(src, stereo.astype(np.float32), 8000, subtype="PCM_16")
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", dst, "--subtype", "PCM_24") == 0
    out, sr = sf.read(dst, dtype="float32")
    assert sr == SR and out.shape == (round(7000 * SR / 8000), 2)
    assert sf.info(dst).subtype == "PCM_24"
    data = sf.read(src, dtype="float32")[0]
    left_alone = restorer.restore(data[:, 0], 8000)
    # Channels are a batch of two: the same computation up to float rounding
    # (a few 1e-6) and 24-bit quantisation.
    np.testing.assert_allclose(out[:, 0], left_alone, atol=1e-5)
    assert np.max(np.abs(out[:, 0] - out[:, 1])) > 1e-3


def test_48k_24bit_flac_silence_and_ten_samples(tmp_path, small_weights_dir):
    cases = {"hi.flac": (voiced_signal(0.7)[:30000], 48000, "PCM_24"),
             "silence.wav": (np.zeros(20000, np.float32), SR, "PCM_16"),
             "ten.wav": (np.linspace(-0.5, 0.5, 10).astype(np.float32), SR, "PCM_16")}
    for name, (x, sr, subtype) in cases.items():
        sf.write(tmp_path / name, x, sr, subtype=subtype)
        out = tmp_path / ("out_" + name.split(".")[0] + ".wav")
        assert run_cli("--weights", small_weights_dir, "-i", tmp_path / name, "-o", out) == 0
        y, ysr = sf.read(out, dtype="float32")
        assert ysr == SR and len(y) == round(len(x) * SR / sr)
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


def test_folder_tree_mirrored_bad_file_listed(tmp_path, small_weights_dir, capsys):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    sf.write(src / "one.wav", voiced_signal(0.5), SR)
    sf.write(src / "a" / "b" / "two.flac", voiced_signal(0.8, seed=1), 22050)
    (src / "a" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    (src / "notes.txt").write_text("not audio, not listed")
    out = tmp_path / "out"
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", out) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "1 file(s) failed" in err
    written = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out)
                     for f in fs)
    assert [w for w in written if not w.startswith(".vf_jax/")] == ["a/b/two.wav", "one.wav"]
    assert sf.info(out / "a" / "b" / "two.wav").samplerate == SR


def test_lengths_share_compilations(restorer):
    """Many lengths, few shapes: windows are padded to frame buckets exactly."""
    import jax.monitoring
    lowered = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: lowered.append(kw.get("fun_name"))
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration" else None)
    for seconds in (0.3, 0.41, 0.77, 0.95, 1.0):
        restorer.restore(voiced_signal(seconds), SR)
    assert len([name for name in lowered if "analyse" in str(name)]) <= 1, lowered
    every_length = {buckets.frame_bucket(1 + n // 441) for n in range(1, 30 * SR + 1, 97)}
    assert every_length == set(buckets.FRAME_BUCKETS)
    for frames in range(1, 3002):
        bucket = buckets.frame_bucket(frames)
        assert bucket % 64 == 0 and bucket >= frames + 5
        # Padding wastes little: at most the next multiple of 64, or ~15 %.
        assert bucket <= max(128, padded_frames(frames + 5), 1.15 * (frames + 5))


def test_prepared_lengths_need_no_compilation_when_restored(small_weights_dir, restorer):
    """Compiling from the recorded shapes while the arrays load gives the very
    executables a restoration then uses: no backend compilation at restore."""
    import jax.monitoring
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(kw.get("fun_name"))
        if event == "/jax/core/compile/backend_compile_duration" else None)
    # Three channels: a shape no other test compiles.
    x = np.stack([voiced_signal(2.9, seed=s) for s in (3, 4, 5)], axis=1)
    prepared = Restorer.from_folder(small_weights_dir, prepare=((len(x), 3),))
    assert "jit(analyse)" in compiles and "jit(synthesise)" in compiles
    compiles.clear()
    restored = prepared.restore(x, SR)
    assert [c for c in compiles if c in ("jit(analyse)", "jit(synthesise)")] == []
    np.testing.assert_array_equal(restored, restorer.restore(x, SR))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["released", "restorer"])
def test_bucketed_analysis_equals_unpadded(which, request):
    """Zero padding to the bucket, masked past the true end, changes nothing:
    the released network (BiGRU denoiser, ResUNet) and VF-BiGRU."""
    restorer = request.getfixturevalue(which)
    import jax
    import jax.numpy as jnp
    x = voiced_signal(1.7)
    frames = 1 + len(x) // 441
    kind = weights.analysis_kind(restorer.meta)
    exact = networks.analyse(restorer.variables["analysis"], jnp.asarray(x[None]),
                                 None, None, n_frames=frames, train_bn=False, dropout=False,
                                 kind=kind)
    bucket = buckets.frame_bucket(frames)
    padded = np.zeros((1, bucket * 441), np.float32)
    padded[0, :len(x)] = x
    bucketed = networks.analyse_jit(restorer.variables["analysis"], jnp.asarray(padded),
                                        jnp.int32(len(x)), jax.random.PRNGKey(0),
                                        n_frames=bucket, train_bn=False, dropout=False,
                                        kind=kind)
    np.testing.assert_allclose(bucketed[:, :frames], exact, atol=2e-5)


def test_vocode_of_the_restored_mel_is_the_restoration(restorer):
    """``vocode`` (training summaries' listening path) gives what a restoration
    of one window gives from the same mel (up to the peak normalisation)."""
    x = voiced_signal(1.3)
    result = restorer.restore_full(x, SR)
    wav = networks.vocode(restorer.variables["vocoder"]["params"], result.log_mel, len(x),
                             networks.vocoder_size(restorer.meta))
    assert wav.shape == (1, len(x))
    wav = wav[0] / max(1.0, float(np.max(np.abs(wav))))
    np.testing.assert_allclose(wav, result.audio[:, 0], atol=2e-5)


def test_long_input_is_stitched_without_seams(restorer):
    """Longer than a window (30 s by default; 3 s here, the same code at a
    tenth of the cost): overlapping windows cross-faded; around every boundary
    the result stays close to restoring the whole input at once, with no jump."""
    x = voiced_signal(7.3, seed=11)
    short = Restorer(restorer.variables, restorer.meta, max_window_seconds=3)
    stitched = short.restore(x, SR)
    whole = Restorer(restorer.variables, restorer.meta,
                                 max_window_seconds=8).restore(x, SR)
    plan = short.windows(len(x))
    assert len(plan) == 3 and max(size for _, size in plan) <= 3 * SR
    assert restorer.windows(61 * SR)[-1][0] > 30 * SR and len(restorer.windows(61 * SR)) == 3
    for (start, size), (next_start, _) in zip(plan, plan[1:]):
        assert start + size - next_start >= short.overlap == SR // 2
        seam = slice(next_start, start + size)
        rel = np.linalg.norm(stitched[seam] - whole[seam]) / np.linalg.norm(whole[seam])
        assert rel < 0.1
        assert np.max(np.abs(np.diff(stitched[seam]))) <= 1.2 * np.max(np.abs(np.diff(whole[seam])))


def test_crossfade_weights_sum_to_one():
    plan = windows.plan_windows(10 * SR + 123, 3 * SR, SR // 2)
    total = np.zeros(10 * SR + 123)
    for (start, size), w in zip(plan, windows.crossfade_weights(plan, len(total))):
        total[start:start + size] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


# ------------------------------------------------------------ bad input ---

def bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), SR)
    nan = tmp_path / "nan.wav"
    x = voiced_signal(0.2)
    x[100] = np.nan
    sf.write(nan, x, SR, subtype="FLOAT")
    text = tmp_path / "text.wav"
    text.write_text("hello")
    return {"empty": empty, "zero samples": zero, "NaN": nan, "not audio": text,
            "missing": tmp_path / "absent.wav"}


def test_bad_inputs_fail_with_one_line_and_no_output(tmp_path, small_weights_dir, capsys):
    for what, src in bad_inputs(tmp_path).items():
        dst = tmp_path / f"out_{what.replace(' ', '_')}.wav"
        assert run_cli("--weights", small_weights_dir, "-i", src, "-o", dst) == 1, what
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err, (what, err)
        assert not dst.exists(), what
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".vf_jax-")]


def test_output_equal_to_input_and_existing_output_are_refused(tmp_path, small_weights_dir, capsys):
    src = tmp_path / "keep.wav"
    sf.write(src, voiced_signal(0.3), SR)
    before = src.read_bytes()
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", src) == 1
    assert run_cli("--weights", small_weights_dir, "-i", tmp_path, "-o", tmp_path) == 1
    other = tmp_path / "other.wav"
    other.write_bytes(b"user data")
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", other) == 1
    assert src.read_bytes() == before and other.read_bytes() == b"user data"
    assert run_cli("--weights", small_weights_dir, "-i", src, "-o", other, "--overwrite") == 0
    assert sf.info(other).samplerate == SR
    capsys.readouterr()


def test_missing_or_broken_weights_and_unwritable_output(tmp_path, small_weights_dir, capsys):
    import shutil
    src = tmp_path / "a.wav"
    sf.write(src, voiced_signal(0.3), SR)
    broken = tmp_path / "broken_weights"
    shutil.copytree(small_weights_dir, broken)
    shutil.rmtree(broken / weights.VARIABLES_DIR / "d")
    for w in (tmp_path / "no_weights", broken):
        assert run_cli("--weights", w, "-i", src, "-o", tmp_path / "o.wav") == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):      # root ignores permissions: use a file as folder
            target = src / "x.wav"
        else:
            target = locked / "x.wav"
        assert run_cli("--weights", small_weights_dir, "-i", src, "-o", target) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    finally:
        locked.chmod(0o700)


def test_real_process_prints_no_traceback(tmp_path, small_weights_dir):
    src = tmp_path / "bad.wav"
    src.write_text("nonsense")
    proc = subprocess.run([sys.executable, "-m", "vf_jax", "restore", "--weights",
                           small_weights_dir, "-i", str(src), "-o", str(tmp_path / "o.wav"),
                           "--quiet"],
                          capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("python -m vf_jax restore: error:")

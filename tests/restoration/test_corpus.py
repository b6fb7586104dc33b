"""Restoring a folder (``python -m vf_jax restore -i DIR -o OUT``): batched
results equal each file restored alone; runs resume, shard, refuse mixed
settings, and survive kills and SIGTERM with every file restored once."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from vf_jax.audio import io as audio_io
from vf_jax.audio.synthetic import speech_like, voiced_signal
from vf_jax.cli import main
from vf_jax.restoration import corpus, weights
from vf_jax.restoration.restorer import Restorer

from conftest import TEST_XLA_FLAGS
from helpers import ROOT  # noqa: E402

SR = 44100


def make_corpus(folder, count=9, seed=0):
    """``count`` files of 0.3-3.5 s in two speaker folders, at three rates, a
    few stereo; returns their relative paths."""
    rng = np.random.default_rng(seed)
    rels = []
    for i in range(count):
        seconds = float(rng.uniform(0.3, 3.5))
        x = speech_like(seconds, seed=i) if i % 2 else voiced_signal(seconds, seed=i)
        rate = (SR, 16000, 22050)[i % 3]
        if rate != SR:
            x = audio_io.resample(x[:, None], SR, rate)[:, 0]
        if i % 4 == 3:
            x = np.stack([x, 0.6 * x[::-1]], axis=1)
        rel = os.path.join(f"spk{i % 2}", f"utt{i}.flac")
        os.makedirs(folder / f"spk{i % 2}", exist_ok=True)
        audio_io.write_audio(str(folder / rel), x, rate, "PCM_24")
        rels.append(rel)
    return rels


@pytest.fixture
def folders(tmp_path):
    inp = tmp_path / "in"
    rels = make_corpus(inp)
    return inp, tmp_path / "out", rels


def out_rel(rel, ext=".wav"):
    return os.path.splitext(rel)[0] + ext


def restore_cli(inp, out, weights_dir, *extra):
    return main(["restore", "-i", str(inp), "-o", str(out), "--weights", weights_dir,
                 "--quiet", *extra])


def manifest_rows(out):
    rows = []
    for name in sorted(os.listdir(out / corpus.MANIFEST_DIR)):
        if name.endswith(".jsonl"):
            rows += [json.loads(line) for line in open(out / corpus.MANIFEST_DIR / name)]
    return rows


def test_a_folder_restores_as_each_file_alone(folders, small_weights_dir):
    inp, out, rels = folders
    assert restore_cli(inp, out, small_weights_dir, "--subtype", "FLOAT", "--batch-size",
                       "3") == 0
    restorer = Restorer(*weights.load(small_weights_dir))
    for rel in rels:
        audio, rate = audio_io.read_audio(str(inp / rel))
        alone = restorer.restore(audio, rate)
        got, got_rate = sf.read(str(out / out_rel(rel)), dtype="float32", always_2d=True)
        assert got_rate == SR and got.shape == alone.shape
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-4 * np.max(np.abs(alone)))
    rows = manifest_rows(out)
    assert sorted(r["input"] for r in rows) == sorted(rels)
    assert all(r["status"] == "done" and r["error"] is None and r["seconds"] > 0.2
               for r in rows)


def test_a_run_again_restores_only_what_is_missing_changed_or_failed(folders,
                                                                    small_weights_dir, capsys):
    inp, out, rels = folders
    (inp / "spk0" / "broken.wav").write_bytes(b"RIFF not really")
    assert restore_cli(inp, out, small_weights_dir) == 1          # the broken file failed
    err = capsys.readouterr().err
    assert "broken.wav" in err and "1 file(s) failed" in err
    before = {rel: os.stat(out / out_rel(rel)).st_mtime_ns for rel in rels}
    os.remove(out / out_rel(rels[0]))                           # lost
    audio, rate = audio_io.read_audio(str(inp / rels[1]))
    audio_io.write_audio(str(inp / rels[1]), 0.5 * audio, rate, "PCM_24")   # changed
    os.remove(inp / "spk0" / "broken.wav")                      # the failed one gone
    assert main(["restore", "-i", str(inp), "-o", str(out), "--weights",
                 small_weights_dir]) == 0
    err = capsys.readouterr().err
    assert f"restored 2, skipped {len(rels) - 2} (done before), failed 0" in err
    for rel in rels[2:]:
        assert os.stat(out / out_rel(rel)).st_mtime_ns == before[rel]
    assert os.path.exists(out / out_rel(rels[0]))


def test_other_settings_and_foreign_files_are_refused(folders, small_weights_dir, capsys):
    inp, out, rels = folders
    os.makedirs(out / "spk1")
    (out / out_rel(rels[1])).write_bytes(b"the user's own file")
    assert restore_cli(inp, out, small_weights_dir) == 1
    assert "output exists" in capsys.readouterr().err
    assert (out / out_rel(rels[1])).read_bytes() == b"the user's own file"
    os.remove(out / out_rel(rels[1]))
    assert restore_cli(inp, out, small_weights_dir) == 0
    for extra in (["--strength", "0.7"], ["--mode", "1"], ["--format", "flac"]):
        assert restore_cli(inp, out, small_weights_dir, *extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "other settings" in err[0]
    assert restore_cli(inp, out, small_weights_dir, "--format", "flac", "--overwrite") == 0
    assert all(os.path.exists(out / out_rel(rel, ".flac")) for rel in rels)


def test_shards_share_the_folder(folders, small_weights_dir, capsys):
    inp, out, rels = folders
    assert restore_cli(inp, out, small_weights_dir, "--shard", "1/3") == 0
    ordered = sorted(rels)               # the order of the listing, which shards cut
    assert sorted(os.listdir(out / corpus.MANIFEST_DIR)) == ["settings.json",
                                                             "shard-1-of-3.jsonl"]
    assert sorted(r["input"] for r in manifest_rows(out)) == ordered[1::3]
    for shard in ("0/3", "2/3"):
        assert restore_cli(inp, out, small_weights_dir, "--shard", shard) == 0
    assert sorted(r["input"] for r in manifest_rows(out)) == ordered
    capsys.readouterr()
    assert main(["restore", "-i", str(inp), "-o", str(out), "--weights",
                 small_weights_dir]) == 0
    assert f"restored 0, skipped {len(rels)} (done before)" in capsys.readouterr().err
    for bad in ("3/3", "x", "1/0"):
        assert restore_cli(inp, out, small_weights_dir, "--shard", bad) == 1


def _command(inp, out, weights_dir, *extra):
    return [sys.executable, "-m", "vf_jax", "restore", "-i", str(inp), "-o", str(out),
            "--weights", weights_dir, "--quiet", "--batch-size", "2", *extra]


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS)


def _outputs(out, rels):
    return {rel: sf.read(str(out / out_rel(rel)), dtype="int16")[0] for rel in rels}


@pytest.mark.slow
@pytest.mark.multiprocess
def test_killed_three_times_ends_as_an_uninterrupted_run(tmp_path, small_weights_dir):
    inp = tmp_path / "in"
    rels = make_corpus(inp, count=12, seed=1)
    whole = tmp_path / "whole"
    subprocess.run(_command(inp, whole, small_weights_dir), cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    out = tmp_path / "out"
    rng = random.Random(0)
    kills = 0
    while kills < 3:
        proc = subprocess.Popen(_command(inp, out, small_weights_dir), cwd=ROOT, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = len(manifest_rows(out)) if (out / corpus.MANIFEST_DIR).exists() else 0
        target += rng.randint(1, 3)                 # kill once a few more files are done
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            done = (len(manifest_rows(out)) if (out / corpus.MANIFEST_DIR).exists() else 0)
            if done >= target:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))           # anywhere: reading, batching, writing
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break
    result = subprocess.run(_command(inp, out, small_weights_dir), cwd=ROOT, env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert kills == 3
    rows = manifest_rows(out)
    assert sorted(r["input"] for r in rows if r["status"] == "done") == sorted(rels)
    leftovers = [f for _, _, files in os.walk(out) for f in files if f.startswith(".vf_jax-")]
    assert not leftovers
    expected, got = _outputs(whole, rels), _outputs(out, rels)
    for rel in rels:
        np.testing.assert_array_equal(got[rel], expected[rel], err_msg=rel)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_sigterm_stops_cleanly_and_the_run_goes_on(tmp_path, small_weights_dir):
    inp = tmp_path / "in"
    rels = make_corpus(inp, count=10, seed=2)
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(inp, out, small_weights_dir), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / corpus.MANIFEST_DIR).exists()
                                          and manifest_rows(out)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "run the same command again" in err and "Traceback" not in err
    written = [f for _, _, files in os.walk(out) for f in files if f.endswith(".wav")]
    assert len(written) == len(manifest_rows(out)) < len(rels)
    assert not [f for _, _, files in os.walk(out) for f in files if f.startswith(".vf_jax-")]
    done = subprocess.run(_command(inp, out, small_weights_dir), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(r["input"] for r in manifest_rows(out)) == sorted(rels)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_share_a_folder_through_jax_distributed(tmp_path, small_weights_dir):
    inp = tmp_path / "in"
    rels = make_corpus(inp, count=7, seed=3)
    out = tmp_path / "out"
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(
        _command(inp, out, small_weights_dir, "--distributed", "--coordinator",
                 f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)),
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    names = sorted(os.listdir(out / corpus.MANIFEST_DIR))
    assert names == ["settings.json", "shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]
    ordered = sorted(rels)
    for i in range(2):
        rows = [json.loads(line) for line in open(out / corpus.MANIFEST_DIR / names[1 + i])]
        assert sorted(r["input"] for r in rows) == ordered[i::2]

"""Fine-tuning on one's own pairs: alignment, the ``gsr_paired`` build, the
paired loader and step, starting weights, frozen parts, and the whole recipe."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from vf_jax.audio import io as audio_io
from vf_jax.audio import mel as mel_lib
from vf_jax.data import alignment, builders, loader
from vf_jax.data import prepare as build_lib
from vf_jax.data.__main__ import main as data_main
from vf_jax.data.clip import load_clip, telephone, write_example_pairs
from vf_jax.errors import UserError

from helpers import ROOT, build_interrupted_then_again

SR = 44100


def write(path, audio, sr=SR):
    audio_io.write_audio(str(path), np.asarray(audio, np.float32), sr, "FLOAT")


# ------------------------------------------------------------ alignment ---

def test_offsets_are_found_and_unrelated_pairs_refused():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(SR).astype(np.float32)
    for lag in (0, 137, -2205):
        late = np.concatenate([np.zeros(max(lag, 0)), clean[max(-lag, 0):]])
        degraded = -0.3 * late + 0.1 * rng.standard_normal(len(late))   # inverted, noisy
        found, corr = alignment.find_offset(degraded, clean, max_lag=SR // 10)
        assert found == lag and corr < -0.5
        d, c, removed = alignment.align_pair(degraded, clean, SR, max_offset_seconds=0.1)
        assert removed == lag and len(d) == len(c) == len(clean) - max(-lag, 0)
        assert np.corrcoef(d, c)[0, 1] < -0.9                          # aligned now
    with pytest.raises(alignment.Unaligned, match="no alignment within 0.1 s"):
        alignment.align_pair(rng.standard_normal(SR), clean, SR, max_offset_seconds=0.1)
    with pytest.raises(alignment.Unaligned, match="lengths differ by 0.50 s"):
        alignment.align_pair(clean[:SR // 2], clean, SR, max_offset_seconds=0.1)
    # A lag beyond the limit is not looked for: that pair does not align.
    far = np.concatenate([np.zeros(SR // 5), clean])[:SR]
    with pytest.raises(alignment.Unaligned, match="no alignment"):
        alignment.align_pair(far, clean, SR, max_offset_seconds=0.1)


def test_telephone_line_is_band_limited_and_companded():
    clip = load_clip()[:2 * SR]
    line = telephone(clip)
    f, p_clip = scipy.signal.welch(clip, SR, nperseg=4096)
    _, p_line = scipy.signal.welch(line, SR, nperseg=4096)
    band = (f > 400) & (f < 3200)
    above = f > 4500
    assert 0.5 < np.sum(p_line[band]) / np.sum(p_clip[band]) < 2.0
    assert np.sum(p_line[above]) < 1e-4 * np.sum(p_clip[above])
    assert len(line) == len(clip) and np.max(np.abs(line)) <= 1.0 + 1e-6
    # 8-bit mu-law companding: a coding noise of about 38 dB SNR (G.711).
    band_only = scipy.signal.sosfiltfilt(
        scipy.signal.butter(4, (300.0, 3400.0), "bandpass", fs=8000, output="sos"),
        audio_io.resample(clip[:, None], SR, 8000)[:, 0])
    coded = audio_io.resample(line[:, None], SR, 8000)[:len(band_only), 0]
    snr = 10 * np.log10(np.sum(band_only ** 2) / np.sum((coded - band_only) ** 2))
    assert 25 < snr < 45, snr


# --------------------------------------------------------------- build ---

@pytest.fixture(scope="module")
def pair_folders(tmp_path_factory):
    """The clip's example pairs (telephone, offsets) plus every kind of bad pair."""
    root = tmp_path_factory.mktemp("pairs")
    degraded, clean = write_example_pairs(str(root), pieces=7)
    clip = load_clip()
    piece = clip[SR:2 * SR]
    write(root / "clean" / "bad" / "other_rate.wav", piece)
    write(root / "degraded" / "bad" / "other_rate.wav",
          audio_io.resample(telephone(piece)[:, None], SR, 16000)[:, 0], 16000)
    write(root / "clean" / "bad" / "unrelated.wav", piece)
    write(root / "degraded" / "bad" / "unrelated.wav", telephone(clip[4 * SR:5 * SR]))
    write(root / "clean" / "bad" / "silent.wav", piece)
    write(root / "degraded" / "bad" / "silent.wav", np.zeros(SR))
    write(root / "degraded" / "bad" / "lonely.wav", piece)
    write(root / "clean" / "bad" / "too_long.wav", clip[:3 * SR])
    write(root / "degraded" / "bad" / "too_long.wav", telephone(clip[:SR]))
    return root, degraded, clean


@pytest.fixture(scope="module")
def paired_dir(tmp_path_factory, pair_folders):
    _, degraded, clean = pair_folders
    out = tmp_path_factory.mktemp("tfds")
    assert data_main(["build", "paired", "--degraded", degraded, "--clean", clean,
                      "--data-dir", str(out), "--split-by", "file",
                      "--validation-fraction", "0.3", "--quiet"]) == 0
    return out


def test_pairs_are_aligned_split_and_bad_ones_logged(paired_dir, pair_folders, capsys):
    log = json.loads((paired_dir / "gsr_paired_build_log.json").read_text())
    assert log["skipped"].keys() == {"bad/other_rate", "bad/unrelated", "bad/silent",
                                     "bad/too_long"}
    assert log["skipped"]["bad/other_rate"].startswith("rates differ (degraded 16000 Hz, clean "
                                                       "44100 Hz")
    assert log["skipped"]["bad/silent"] == "degraded: silent"
    assert "no alignment" in log["skipped"]["bad/unrelated"]
    assert "lengths differ" in log["skipped"]["bad/too_long"]
    assert log["unpaired"] == ["degraded/bad/lonely"]
    assert log["split_by"] == "file" and len(log["validation"]) == 2
    assert log["examples"] == {"train": 5, "validation": 2}
    # The offsets removed are the delays write_example_pairs put in (within
    # the telephone line's own delay of a few samples).
    rng = np.random.default_rng(0)
    delays = [int(rng.uniform(0, 20.0) * SR / 1000) for _ in range(7)]
    for i, delay in enumerate(delays):
        assert abs(log["aligned"].get(f"clip/{i:02d}", 0) * SR - delay) <= 3, (i, delay)
    records = {}
    for split in ("train", "validation"):
        ds = builders.data_source("paired", str(paired_dir), split)
        records.update({r["name"].decode(): r for r in (ds[i] for i in range(len(ds)))})
    assert sorted(records) == [f"clip/{i:02d}" for i in range(7)]
    for name, r in records.items():
        assert len(r["degraded"]) == len(r["clean"]) and r["degraded"].dtype == np.int16
        d, c = audio_io.from_pcm16(r["degraded"]), audio_io.from_pcm16(r["clean"])
        assert abs(alignment.find_offset(d, c, 200)[0]) <= 3        # aligned now
    assert not (paired_dir / ".staging").exists()


def test_paired_build_errors_are_one_line(tmp_path, pair_folders, capsys):
    root, degraded, clean = pair_folders
    cases = [(["--clean", clean], "give --degraded DIR and --clean DIR"),
             (["--degraded", str(tmp_path / "missing"), "--clean", clean], "is not a folder"),
             (["--degraded", str(root / "clean" / "bad"), "--clean",
               str(root / "degraded" / "clip")], "no files of")]
    for extra, message in cases:
        assert data_main(["build", "paired", "--data-dir", str(tmp_path / "d"), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_interrupted_paired_build_resumes_without_rereading(tmp_path, pair_folders,
                                                            monkeypatch):
    _, degraded, clean = pair_folders
    out = tmp_path / "tfds"
    pairs = {"degraded": degraded, "clean": clean, "split_by": "file"}
    # Loads 1-18 align the 9 pairs whose sides are usable; 21 is while TFDS
    # writes the dataset.
    log, reads = build_interrupted_then_again(
        monkeypatch, 21, lambda: build_lib.build("paired", str(out), pairs=pairs, quiet=True))
    assert reads == []
    assert sum(log["examples"].values()) == 7


# -------------------------------------------------------------- loader ---

def locate(crop, records):
    """``(start, record)`` of the record whose clean side holds ``crop``."""
    for r in records:
        clean = audio_io.from_pcm16(r["clean"])
        if len(clean) < len(crop):
            continue
        windows = np.lib.stride_tricks.sliding_window_view(clean, 64)
        hits = np.flatnonzero(np.all(windows == crop[:64], axis=1))
        for start in hits:
            if np.array_equal(clean[start:start + len(crop)], crop):
                return int(start), r
    raise AssertionError("a crop that is in no record")


def test_paired_crops_share_offsets_mix_simulation_and_resume(paired_dir):
    src = loader.Sources.from_data_dir(str(paired_dir), speech="paired")
    assert src.noise is None and src.rir is None          # synthetic noise and rooms
    records = [src.speech[i] for i in range(len(src.speech))]
    make = lambda: loader.make_loader(src, batch_size=4, seed=3, crop_seconds=0.5,
                                      rir_seconds=0.25, shard_index=0, shard_count=1,
                                      paired_fraction=0.5)
    it = iter(make())
    batches = [next(it) for _ in range(6)]
    crop = SR // 2
    flags = np.concatenate([b["paired"] for b in batches])
    assert 0 < flags.sum() < len(flags)                    # both kinds, about half each
    for b in batches:
        assert b["speech"].shape == b["degraded"].shape == b["noise"].shape == (4, crop)
        assert b["rir"].shape == (4, SR // 4)
        for clean, degraded in zip(b["speech"], b["degraded"]):
            start, record = locate(clean, records)
            np.testing.assert_array_equal(
                degraded, audio_io.from_pcm16(record["degraded"])[start:start + crop])
    # Exactly resumable.
    state_it = iter(make())
    for _ in range(2):
        next(state_it)
    state = state_it.get_state()
    expected = [next(state_it) for _ in range(2)]
    resumed = iter(make())
    resumed.set_state(state)
    for x in expected:
        y = next(resumed)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    # Only real pairs: no simulation inputs.
    only = next(iter(loader.make_loader(src, batch_size=2, seed=0, crop_seconds=0.5,
                                        shard_index=0, shard_count=1, paired_fraction=1.0)))
    assert set(only) == {"speech", "degraded", "speech_length", "paired"}
    assert np.all(only["paired"] == 1)


def test_the_step_takes_real_pairs_where_flagged_and_simulates_the_rest():
    from vf_jax import config_files
    from vf_jax.audio import degradations
    from vf_jax.training.analysis import step as ts
    rng = np.random.default_rng(0)
    clip = load_clip()
    n = SR // 4
    speech = np.stack([clip[SR + i * n:SR + (i + 1) * n] for i in range(4)]).astype(np.float32)
    batch = {"speech": speech, "degraded": 0.5 * speech[:, ::-1].copy(),
             "speech_length": np.full(4, n, np.int32), "paired": np.array([1, 0, 1, 0], np.int32),
             "noise": 0.1 * rng.standard_normal((4, n)).astype(np.float32),
             "rir": np.pad([[1.0]] * 4, ((0, 0), (0, 99))).astype(np.float32)}
    config = config_files.get_config("resunet", "dnn")
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    degraded, target, mel_in, mel_clean, _ = jax.jit(
        lambda b, k: ts.degrade_and_analyse(b, k, config.degradation))(batch, keys)
    simulated, simulated_target = jax.jit(degradations.gsr_degrader(config.degradation))(
        keys, batch["speech"], batch["noise"], batch["rir"])
    for i in range(4):
        want = (batch["degraded"][i], batch["speech"][i]) if batch["paired"][i] else \
            (simulated[i], simulated_target[i])
        np.testing.assert_allclose(degraded[i], want[0], atol=1e-6)
        np.testing.assert_allclose(target[i], want[1], atol=1e-6)
    ref = mel_lib.mel_spectrogram(np.asarray(degraded), ts.FRONT_END)[0]
    np.testing.assert_allclose(mel_in, ref, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------- starting weights ---

def tiny_finetune(data_dir, **overrides):
    from vf_jax import config_files
    c = config_files.get_config("finetune")
    c.data_dir = str(data_dir)
    c.crop_seconds, c.batch_size_per_device = 0.5, 2
    c.eval_examples, c.eval_batch_size_per_device = 4, 2
    c.learning_rate, c.warmup_steps = 1e-3, 1
    c.log_every, c.quiet, c.worker_count = 1, True, 0
    for k, v in overrides.items():
        c[k] = v
    return c


def test_freezing_keeps_named_parts_and_statistics(paired_dir):
    from vf_jax.training import optim
    from vf_jax.training.analysis import step as ts
    config = tiny_finetune(paired_dir, model="dnn", freeze="dense0,bn1", batch_norm="update")
    state = ts.init_state(config, jax.random.PRNGKey(0))
    frames = 51
    rng = np.random.default_rng(0)
    mel_in = jnp.asarray(rng.uniform(0.0, 1.0, (2, frames, 128)), jnp.float32)
    mel_clean = jnp.asarray(rng.uniform(0.0, 1.0, (2, frames, 128)), jnp.float32)
    update = jax.jit(ts.make_update(config))
    after = state
    for _ in range(2):   # the first update's rate is the warm-up's 0
        after, _ = update(after, mel_in, mel_clean, jnp.array([frames, frames]),
                          jax.random.PRNGKey(1))
    names = optim.path_names(state.params)
    for name, a, b in zip(names, jax.tree_util.tree_leaves(state.params),
                          jax.tree_util.tree_leaves(after.params)):
        if name.startswith(("dense0/", "bn1/")):
            np.testing.assert_array_equal(a, b, err_msg=name)
        elif name.endswith("kernel"):    # every trained layer's weights moved
            assert not np.array_equal(a, b), name
    for name, a, b in zip(optim.path_names(state.batch_stats),
                          jax.tree_util.tree_leaves(state.batch_stats),
                          jax.tree_util.tree_leaves(after.batch_stats)):
        assert np.array_equal(a, b) == name.startswith("bn1/"), name
    # Frozen statistics everywhere; a misspelt part is refused.
    config.batch_norm = "frozen"
    still = state
    for _ in range(2):
        still, _ = jax.jit(ts.make_update(config))(still, mel_in, mel_clean,
                                                   jnp.array([frames, frames]),
                                                   jax.random.PRNGKey(1))
    for a, b in zip(jax.tree_util.tree_leaves(state.batch_stats),
                    jax.tree_util.tree_leaves(still.batch_stats)):
        np.testing.assert_array_equal(a, b)
    config.freeze = "dense0,encoder"
    with pytest.raises(UserError, match="'encoder' matches no parameter"):
        ts.init_state(config, jax.random.PRNGKey(0))


@pytest.mark.slow
def test_starting_weights_from_a_folder_or_a_run(tmp_path, paired_dir, small_weights_dir):
    from train.analysis import train_and_evaluate
    from vf_jax.restoration import weights
    from vf_jax.training.analysis import train as analysis_training
    variables, _ = weights.load(small_weights_dir)
    config = tiny_finetune(paired_dir, init_weights=small_weights_dir, num_steps=2,
                           eval_every=2, checkpoint_every=2)
    start = analysis_training.starting_point(config)
    assert config.model == "bigru"                     # taken from the folder
    for a, b in zip(jax.tree_util.tree_leaves(start),
                    jax.tree_util.tree_leaves(variables["analysis"])):
        np.testing.assert_array_equal(a, b)
    run = str(tmp_path / "run")
    state = train_and_evaluate(config, run)
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    val = [r for r in rows if "val/mel_l1" in r][-1]
    assert {"val/start_mel_l1", "val/start_mel_lsd", "val/start_mel_sispnr"} <= set(val)
    # A run folder is a starting point too: its best checkpoint.
    again = tiny_finetune(paired_dir, init_weights=run)
    from_run = analysis_training.starting_point(again)
    for a, b in zip(jax.tree_util.tree_leaves(from_run["params"]),
                    jax.tree_util.tree_leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    # Mismatches are one-line errors.
    for overrides, message in (({"model": "dnn"}, "holds a bigru analysis network"),
                               ({"init_weights": str(tmp_path / "none")}, "no such folder"),
                               ({"init_weights": "", "model": ""}, "config.model is empty")):
        bad = tiny_finetune(paired_dir, **{"init_weights": small_weights_dir, **overrides})
        with pytest.raises(UserError, match=message):
            analysis_training.starting_point(bad)


# ------------------------------------------------------------- the floor ---

# A released-layout model trained on the GSR simulation only, at 1/12 of the
# published widths (its make.py says how): the published weights' role.
SIMULATION_TRAINED = os.path.join(ROOT, "tests", "fixtures",
                                  "finetune_start", "weights")


@pytest.mark.slow
def test_finetuning_beats_its_start_and_training_from_scratch(tmp_path, paired_dir):
    """Fine-tuned on the telephone pairs (a line the simulation does not
    make), the simulation-trained model's held-out mel L1 falls below its
    own, and below what the same recipe reaches from a random start of the
    same network in the same steps."""
    from train.analysis import train_and_evaluate
    from vf_jax.restoration import weights
    from vf_jax.training.analysis import step as ts
    from vf_jax.training.analysis import train as analysis_training
    width = weights.analysis_width(weights.load_meta(SIMULATION_TRAINED))
    settings = dict(num_steps=40, eval_every=40, checkpoint_every=40, batch_size_per_device=4,
                    learning_rate=1e-3, warmup_steps=5, eval_examples=16)
    tuned = tiny_finetune(paired_dir, init_weights=SIMULATION_TRAINED, **settings)
    train_and_evaluate(tuned, str(tmp_path / "tuned"))
    assert tuned.model == "released" and tuned.model_width == width == 1 / 12
    scratch = tiny_finetune(paired_dir, model="released", model_width=width, **settings)
    train_and_evaluate(scratch, str(tmp_path / "scratch"))
    tuned_val = validation_rows(str(tmp_path / "tuned"))[-1]
    scratch_val = validation_rows(str(tmp_path / "scratch"))[-1]
    start, after = tuned_val["val/start_mel_l1"], tuned_val["val/mel_l1"]
    print(f"held-out mel L1: start {start:.4f}, fine-tuned {after:.4f}, from scratch "
          f"{scratch_val['val/mel_l1']:.4f}, input {tuned_val['val/input_mel_l1']:.4f}")
    # Measured here and with seeds 1, 2: fine-tuned/start 0.63-0.73, fine-tuned/
    # scratch 0.36-0.63, and 0.62-0.69 of the degraded input's own L1.
    assert after < 0.85 * start
    assert after < 0.85 * scratch_val["val/mel_l1"]
    assert after < tuned_val["val/input_mel_l1"]
    # The narrow weights folder restores as the training network does at step 0.
    from vf_jax.restoration.restorer import Restorer
    config = tiny_finetune(paired_dir, init_weights=SIMULATION_TRAINED)
    start = analysis_training.starting_point(config)
    state = analysis_training.start_from(ts.init_state(config, jax.random.PRNGKey(0)), start)
    clip = load_clip()[:SR]
    ours = analysis_training.restore_log_mel(config, state, clip[None])[0]
    ref = Restorer.from_folder(SIMULATION_TRAINED).restore_full(clip, SR).log_mel[0]
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-4 * np.max(np.abs(ref))


# ----------------------------------------------------- the README recipe ---

def run_command(*args, cwd):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr




@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_recipe_runs_from_the_command_line(tmp_path, small_weights_dir):
    """README, "Adapt VoiceFixer to your recordings": example pairs, the build,
    fine-tuning, export and the side-by-side evaluation, as commands."""
    w = small_weights_dir
    err = run_command("vf_jax.data", "example-pairs", "--out", "pairs", cwd=tmp_path)
    assert "wrote 7 pairs" in err
    err = run_command("vf_jax.data", "build", "paired", "--degraded", "pairs/degraded",
                      "--clean", "pairs/clean", "--data-dir", "data", "--quiet", cwd=tmp_path)
    assert "built gsr_paired in data: 6 train, 1 validation (7 offset(s) removed" in err
    run_command("train.analysis", "--config", os.path.join(ROOT, "configs", "finetune.py"),
                "--workdir", "runs/finetune", "--config.data_dir=data",
                f"--config.init_weights={w}", "--config.num_steps=3",
                "--config.batch_size_per_device=2", "--config.crop_seconds=0.5",
                "--config.eval_every=3", "--config.eval_examples=2",
                "--config.eval_batch_size_per_device=2", "--config.worker_count=0",
                "--config.quiet=True", cwd=tmp_path)
    val = validation_rows(str(tmp_path / "runs" / "finetune"))[-1]
    assert val["val/start_mel_l1"] > 0 and val["val/mel_l1"] > 0
    run_command("vf_jax", "export", "--analysis", "runs/finetune", "--vocoder", w,
                "--out", "weights/finetuned", cwd=tmp_path)
    run_command("vf_jax", "evaluate", "--pairs", "data", "--weights", f"published={w}",
                "--weights", "finetuned=weights/finetuned", "--out", "report", "--no-dnsmos",
                "--quiet", "--workers", "1", cwd=tmp_path)
    report = tmp_path / "report"
    assert (report / "published" / "summary.md").exists()
    assert (report / "finetuned" / "summary.md").exists()
    table = (report / "comparison.md").read_text()
    assert "| metric | published | finetuned |" in table
    summaries = json.loads((report / "comparison.json").read_text())
    for name in ("published", "finetuned"):
        own = json.loads((report / name / "summary.json").read_text())["summary"]
        assert summaries[name] == own
        assert own["all"]["lsd"]["n"] == 1                 # the one held-out pair
    # The published restorer's files are the restorer's own output on that pair.
    from vf_jax.restoration.restorer import Restorer
    held_out = next((tmp_path / "report" / "paired" / "degraded").rglob("*.wav"))
    audio, rate = audio_io.read_audio(str(held_out))
    rel = held_out.relative_to(tmp_path / "report" / "paired" / "degraded")
    ours, _ = audio_io.read_audio(str(report / "published" / "restored" / rel))
    np.testing.assert_allclose(ours[:, 0], Restorer.from_folder(w).restore(audio, rate)[:, 0],
                               atol=1e-5)


def validation_rows(run):
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    return [r for r in rows if "val/mel_l1" in r]

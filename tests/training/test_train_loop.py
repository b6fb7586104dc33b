"""``python -m train.analysis``: exact resume, preemption, NaN stop, broken checkpoints."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from train.analysis import TrainingStopped, train_and_evaluate  # noqa: E402
from vf_jax.config_files import get_config  # noqa: E402

from conftest import TEST_XLA_FLAGS  # noqa: E402
from helpers import ROOT  # noqa: E402


def tiny(steps, **overrides):
    c = get_config("tiny")
    c.num_steps, c.checkpoint_every, c.log_every, c.quiet = steps, 5, 1, True
    c.crop_seconds, c.batch_size_per_device = 0.5, 2
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def saved_state(workdir, step):
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.tree_util.tree_leaves(state["state"])


@pytest.mark.slow
def test_stopped_and_resumed_run_equals_uninterrupted(tmp_path):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    train_and_evaluate(tiny(12), whole)
    train_and_evaluate(tiny(7), split)
    train_and_evaluate(tiny(12), split)
    a, b = saved_state(whole, 12), saved_state(split, 12)
    assert len(a) == len(b) > 20
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(5), workdir)
    with pytest.raises(TrainingStopped, match="non-finite .* step 7; the last good checkpoint "
                                              r"\(step 5\)"):
        train_and_evaluate(tiny(15, learning_rate=1e30), workdir)
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    assert manager.latest_step() == 5


def test_a_checkpoint_s_parts_read_alone_equal_the_whole_state_s(tmp_path):
    """What export reads: the network's part of a saved state, and nothing
    else (no optimiser state, no abstract training state built)."""
    from vf_jax.errors import UserError
    from vf_jax.training import checkpoints
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(5), workdir)
    parts, step = checkpoints.restore_parts(workdir, ("params", "batch_stats"), "latest")
    assert step == 5 and set(parts) == {"params", "batch_stats"}
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    whole = manager.restore(5, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    for name in parts:
        ours = jax.tree_util.tree_leaves_with_path(parts[name])
        theirs = jax.tree_util.tree_leaves_with_path(whole["state"][name])
        assert [p for p, _ in ours] == [p for p, _ in theirs] and ours
        for (_, x), (_, y) in zip(ours, theirs):
            assert isinstance(x, np.ndarray)
            np.testing.assert_array_equal(x, np.asarray(y))
    with pytest.raises(UserError, match="has no discriminators"):
        checkpoints.restore_parts(workdir, ("params", "discriminators"), "latest")


def test_broken_newest_checkpoint_falls_back(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(10), workdir)
    newest = os.path.join(workdir, "checkpoints", "10", "state")
    for name in os.listdir(newest):        # damage the arrays of step 10
        path = os.path.join(newest, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
    train_and_evaluate(tiny(12), workdir)
    err = capsys.readouterr().err
    assert "checkpoint 10 does not read back" in err and "resumed from step 5" in err
    assert ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).latest_step() == 12


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.analysis", "--config", "configs/tiny.py",
           "--workdir", str(workdir), "--config.num_steps=100000",
           "--config.checkpoint_every=1000000", "--config.log_every=1",
           "--config.crop_seconds=0.5"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped by signal" in err and "checkpoint saved" in err
    steps = ocp.CheckpointManager(str(workdir / "checkpoints")).all_steps()
    assert len(steps) == 1 and steps[0] >= 3


def test_logs_tensorboard_scalars_images_audio_and_validation(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(8, eval_every=4, eval_examples=2, eval_batch_size_per_device=2,
                            media_examples=1), workdir)
    acc = ea.EventAccumulator(os.path.join(workdir, "tensorboard"),
                              size_guidance={ea.IMAGES: 0, ea.AUDIO: 0, ea.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    for name in ("loss", "learning_rate", "grad_norm", "examples_per_second"):
        assert [e.step for e in acc.Scalars(name)] == list(range(1, 9))
    for name in ("mel_l1", "input_mel_l1", "mel_lsd", "input_mel_lsd", "mel_sispnr",
                 "input_mel_sispnr"):
        assert [e.step for e in acc.Scalars("val/" + name)] == [4, 8]
    assert sorted(tags["images"]) == ["mel/0/clean", "mel/0/degraded", "mel/0/restored"]
    assert sorted(tags["audio"]) == ["audio/0/clean", "audio/0/degraded", "audio/0/restored"]
    assert [e.step for e in acc.Audio("audio/0/restored")] == [4, 8]
    restored = acc.Audio("audio/0/restored")[-1]
    assert restored.sample_rate == 44100 and restored.length_frames == 22050
    image = acc.Images("mel/0/restored")[0]
    assert (image.height, image.width) == (128, 1 + 22050 // 441)
    # metrics.jsonl holds the same numbers as the event files.
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    val = [r for r in rows if "val/mel_l1" in r]
    assert [r["step"] for r in val] == [4, 8]
    assert val[-1]["val/mel_l1"] == pytest.approx(acc.Scalars("val/mel_l1")[-1].value, rel=1e-6)
    # The network already beats its input after a few steps on this clip.
    assert val[-1]["val/mel_l1"] < val[-1]["val/input_mel_l1"]


def test_time_budget_saves_and_stops(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(100_000, max_train_seconds=3.0, eval_every=0, quiet=False,
                            checkpoint_every=1_000_000), workdir)
    err = capsys.readouterr().err
    assert "stopped by the time budget" in err
    # The progress bar counts the budget's seconds, not the placeholder steps.
    assert re.search(r"\| *[0-3]/3 s \[", err) and "/100000" not in err, err[-500:]
    steps = ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).all_steps()
    assert len(steps) == 1 and 1 <= steps[0] < 100_000


def test_checkpoints_keep_the_newest_and_the_best(tmp_path):
    from vf_jax.data import loader
    from vf_jax.training import checkpoints
    data_iter = iter(loader.make_loader(loader.Sources(speech=[
        {"audio": np.zeros(44100, np.int16)}]), batch_size=1, seed=0, crop_seconds=0.1))
    mgr = checkpoints.manager(str(tmp_path), keep=2, best_metric="val/mel_l1")
    for step, value in zip(range(1, 7), [3.0, 1.0, 2.0, None, 4.0, 5.0]):
        metrics = None if value is None else {"val/mel_l1": value}
        checkpoints.save(mgr, step, {"w": np.full(3, step, np.float32)}, data_iter, metrics)
    mgr.wait_until_finished()
    assert mgr.all_steps() == [2, 5, 6]        # the best (1.0 at step 2) and the newest two
    restored = checkpoints.restore_newest(mgr, {"w": np.zeros(3, np.float32)}, data_iter,
                                          str(tmp_path))
    np.testing.assert_array_equal(restored["w"], np.full(3, 6, np.float32))
    mgr.close()


def test_validation_audio_through_a_weights_folders_vocoder(tmp_path, small_weights_dir):
    """``vocoder_weights``: validation audio from that folder's generator, at
    the size the folder records."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny(2, eval_every=2, eval_examples=2, eval_batch_size_per_device=2,
                            media_examples=1, vocoder_weights=small_weights_dir), workdir)
    acc = ea.EventAccumulator(os.path.join(workdir, "tensorboard"), size_guidance={ea.AUDIO: 0})
    acc.Reload()
    restored = acc.Audio("audio/0/restored")
    assert [a.step for a in restored] == [2] and restored[0].length_frames == 22050


def run_train(workdir, *overrides):
    cmd = [sys.executable, "-m", "train.analysis", "--config", "configs/tiny.py",
           "--workdir", str(workdir), "--config.quiet=True", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_command_line_overrides_reach_the_run(tmp_path):
    workdir = tmp_path / "run"
    proc = run_train(workdir, "--config.model=bigru", "--config.num_steps=3",
                     "--config.eval_every=0", "--config.crop_seconds=0.5",
                     "--config.batch_size_per_device=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    manager = ocp.CheckpointManager(str(workdir / "checkpoints"))
    assert manager.all_steps() == [3]
    state = manager.restore(3, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    assert "gru" in state["state"]["params"]          # VF-BiGRU, not the config's VF-DNN
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [3]


@pytest.mark.parametrize("override, message", [
    ("--config.data_dir={missing}", "no gsr_speech dataset in"),
    ("--config.parallel=threads", "config.parallel must be jit or pmap"),
    ("--config.no_such_key=1", "no_such_key"),
])
def test_bad_settings_fail_with_one_line(tmp_path, override, message):
    proc = run_train(tmp_path / "run", override.format(missing=tmp_path / "missing"),
                     "--config.num_steps=2")
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_train_together_and_resume(tmp_path):
    """Several hosts: two CPU processes (one device each) joined by
    ``jax.distributed`` train one model over a 2-device global mesh, write one
    set of checkpoints and logs, and resume together."""
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    workdir = tmp_path / "run"

    def launch(steps, port):
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = TEST_XLA_FLAGS      # one device per process
        procs = [subprocess.Popen(
            [sys.executable, "-m", "train.analysis", "--config", "configs/tiny.py",
             "--workdir", str(workdir), "--config.distributed=True",
             f"--config.coordinator_address=localhost:{port}", "--config.num_processes=2",
             f"--config.process_id={i}", f"--config.num_steps={steps}", "--config.eval_every=4",
             "--config.checkpoint_every=2", "--config.log_every=1", "--config.crop_seconds=0.5",
             "--config.batch_size_per_device=2", "--config.eval_examples=4",
             "--config.eval_batch_size_per_device=2", "--config.quiet=True"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]
        results = [p.communicate(timeout=600) for p in procs]
        for p, (_, err) in zip(procs, results):
            assert p.returncode == 0, err[-2000:]
        return [err for _, err in results]

    launch(4, port)
    assert ocp.CheckpointManager(str(workdir / "checkpoints")).all_steps() == [2, 4]
    errs = launch(6, port + 1 if port < 65535 else port - 1)
    assert all("resumed from step 4" in e for e in errs)
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    train_rows = [r["step"] for r in rows if "loss" in r]
    assert train_rows == [1, 2, 3, 4, 5, 6]                 # process 0 alone writes
    assert [r["step"] for r in rows if "val/mel_l1" in r] == [4, 6]
    assert all(r["examples_per_second"] > 0 for r in rows if "loss" in r)

"""``python -m train.analysis``: exact resume, preemption, NaN stop, broken checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs.tiny import get_config  # noqa: E402
from train.analysis import TrainingStopped, train_and_evaluate  # noqa: E402


def tiny(steps, **overrides):
    c = get_config()
    c.num_steps, c.checkpoint_every, c.log_every, c.quiet = steps, 5, 1, True
    c.crop_seconds, c.batch_size_per_device = 0.5, 2
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def saved_state(workdir, step):
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.tree_util.tree_leaves(state["state"])


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

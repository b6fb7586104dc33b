"""The analysis training step: schedule, loss, learning, data parallelism."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vf_jax.audio.synthetic import training_batch
from vf_jax.training import parallel
from vf_jax.training.analysis import step as ts

from helpers import ROOT, analysis_config


def test_learning_rate_schedule_closed_form():
    c = analysis_config("dnn")
    c.learning_rate, c.warmup_steps = 5e-4, 100
    lr = ts.learning_rate(c)
    for step, expected in [(0, 0.0), (50, 2.5e-4), (100, 5e-4), (101, 5e-4),
                           (39_999, 5e-4), (40_000, 4.5e-4), (80_000, 4.05e-4)]:
        assert float(lr(step)) == pytest.approx(expected, rel=1e-6)


def test_loss_counts_only_valid_frames():
    rng = np.random.default_rng(1)
    restored = jnp.asarray(rng.normal(size=(2, 10, 128)), jnp.float32)
    clean = jnp.asarray(rng.uniform(0.1, 2, size=(2, 10, 128)), jnp.float32)
    valid = jnp.asarray([10, 4])
    total, count = ts.mel_loss_sum(restored, clean, valid)
    diff = np.abs(np.asarray(restored) - np.log10(np.asarray(clean)))
    expected = (diff[0].sum() + diff[1, :4].sum()) / (14 * 128)
    assert float(total / count) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dnn", "bigru", "unet"])
def test_each_architecture_learns_a_fixed_set(model):
    """Same examples and degradations every step: the loss falls. VF-UNet at
    a quarter of its widths (the same layers; the published sizes would take
    minutes here, and the parity tests run them)."""
    config = analysis_config(model)
    config.batch_size_per_device = 2
    config.model_width = 0.25 if model == "unet" else 1.0
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = ts.jit_step(config, mesh)
    # Placed as the step returns it: the first call compiles the only program.
    state = parallel.place_replicated(ts.init_state(config, jax.random.PRNGKey(0)), mesh)
    batch = parallel.global_batch(training_batch(2), mesh)
    fixed_rng = parallel.place_replicated(jax.random.PRNGKey(42), mesh)
    losses = []
    for _ in range(8):
        state, metrics = step(state.replace(rng=jnp.copy(fixed_rng)), batch)
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


@pytest.mark.slow
@pytest.mark.multiprocess
def test_data_parallel_steps_match_one_device():
    """With 8 simulated CPU devices the jit-sharded and the pmap steps give the
    parameters one device gives on the same global batch."""
    out = subprocess.run([sys.executable,
                          os.path.join(ROOT, "tests", "scripts", "analysis_data_parallel.py")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    assert result["jit8"] < 1e-5 and result["pmap"] < 1e-5 and result["stats_pmap"] < 1e-5, result
    assert max(result["loss"]) - min(result["loss"]) < 1e-5


@pytest.mark.slow
def test_bf16_step_keeps_float32_parameters_and_tracks_float32():
    """bf16 compute: parameters, optimiser state and BN statistics stay float32;
    the loss is the float32 one to bf16 precision, and training still learns."""
    losses = {}
    for bf16 in (False, True):
        config = analysis_config("dnn")
        config.bf16 = bf16
        mesh = parallel.make_mesh(jax.devices()[:1])
        step = ts.jit_step(config, mesh)
        state = parallel.place_replicated(ts.init_state(config, jax.random.PRNGKey(0)), mesh)
        batch = parallel.global_batch(training_batch(4), mesh)
        fixed_rng = parallel.place_replicated(jax.random.PRNGKey(42), mesh)
        losses[bf16] = []
        for _ in range(8):
            state, metrics = step(state.replace(rng=jnp.copy(fixed_rng)), batch)
            losses[bf16].append(float(metrics["loss"]))
        dtypes = {x.dtype for x in jax.tree_util.tree_leaves(
            (state.params, state.batch_stats, state.opt_state)) if jnp.issubdtype(x.dtype,
                                                                                 jnp.floating)}
        assert dtypes == {jnp.dtype(jnp.float32)}
    assert losses[True][0] == pytest.approx(losses[False][0], rel=2e-2)
    assert np.mean(losses[True][-2:]) < 0.85 * losses[True][0], losses[True]


def test_eval_step_metrics_match_numpy_on_its_own_mels():
    """The validation sums equal the NumPy formulas applied to the mels the
    step returns (L1 over valid frames, LSD on 2 log10 M per example)."""
    config = analysis_config("dnn")
    state = ts.init_state(config, jax.random.PRNGKey(0))
    batch = training_batch(3)
    out = jax.jit(ts.make_eval_step(config, media_examples=3))(
        state.params, state.batch_stats, batch, jax.random.PRNGKey(7))
    out = jax.device_get(out)
    valid = 1 + batch["speech_length"] // ts.FRONT_END.hop
    l1 = lsd = l1_in = lsd_in = count = 0.0
    for i, v in enumerate(valid):
        clean = np.asarray(out["clean_mel"][i, :v], np.float64)
        for name, est in (("restored", out["restored_mel"][i, :v]),
                          ("degraded", out["degraded_mel"][i, :v])):
            diff = np.asarray(est, np.float64) - clean
            frame_lsd = np.mean(np.sqrt(np.mean((2 * diff) ** 2, axis=-1)))
            if name == "restored":
                l1, lsd = l1 + np.abs(diff).sum(), lsd + frame_lsd
            else:
                l1_in, lsd_in = l1_in + np.abs(diff).sum(), lsd_in + frame_lsd
        count += v * 128
    assert float(out["count"]) == count and float(out["examples"]) == 3
    assert float(out["mel_l1_sum"]) / count == pytest.approx(l1 / count, rel=1e-4)
    assert float(out["input_mel_l1_sum"]) / count == pytest.approx(l1_in / count, rel=1e-4)
    assert float(out["mel_lsd_sum"]) == pytest.approx(lsd, rel=1e-4)
    assert float(out["input_mel_lsd_sum"]) == pytest.approx(lsd_in, rel=1e-4)
    from vf_jax.evaluation import metrics
    sp = sum(metrics.sispnr(np.asarray(out["clean_mel"][i, :v]),
                            np.asarray(out["restored_mel"][i, :v])) for i, v in enumerate(valid))
    assert float(out["mel_sispnr_sum"]) == pytest.approx(sp, rel=1e-3)
    assert out["degraded"].shape == out["clean"].shape == batch["speech"].shape
    # The step is deterministic for a key: validation sees the same inputs every time.
    again = jax.device_get(jax.jit(ts.make_eval_step(config, media_examples=3))(
        state.params, state.batch_stats, batch, jax.random.PRNGKey(7)))
    np.testing.assert_array_equal(again["degraded"], out["degraded"])

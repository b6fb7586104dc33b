"""Restoring many inputs at once (``Restorer.restore_many``): windows of many
inputs packed into shared device batches give what restoring each input alone
gives."""

import numpy as np
import pytest

from vf_jax.audio.synthetic import speech_like, voiced_signal
from vf_jax.errors import UserError
from vf_jax.restoration import weights
from vf_jax.restoration.restorer import Restorer

from helpers import ROOT  # noqa: E402

SR = 44100


@pytest.fixture(scope="module")
def restorer(small_weights_dir):
    # 2 s windows: inputs of a few seconds take the several-window path.
    return Restorer(*weights.load(small_weights_dir), max_window_seconds=2.0)


def corpus():
    """Inputs of many lengths (one window, two, three), rates and channels."""
    from vf_jax.audio import io as audio_io
    stereo = np.stack([voiced_signal(1.5, seed=3), speech_like(1.5, seed=4)], axis=1)
    return [
        (speech_like(0.3, seed=1), SR),
        (voiced_signal(2.7, seed=2), SR),                     # two windows
        (stereo, SR),
        (audio_io.resample(speech_like(0.8, seed=5)[:, None], SR, 16000)[:, 0], 16000),
        (voiced_signal(4.9, seed=6), SR),                     # three windows
        (speech_like(1.1, seed=7), SR),
        (audio_io.resample(voiced_signal(2.2, seed=8)[:, None], SR, 48000), 48000),
    ]


def assert_same(batched, alone):
    assert batched.audio.shape == alone.audio.shape
    peak = np.max(np.abs(alone.audio))
    np.testing.assert_allclose(batched.audio, alone.audio, rtol=0, atol=1e-4 * peak)
    np.testing.assert_allclose(batched.log_mel, alone.log_mel, rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode, ladder", [(0, "fine"), (1, "fine"), (0, "coarse"),
                                          (1, "coarse"), (0, (256, 448, 3008))])
def test_batched_inputs_equal_each_restored_alone(restorer, small_weights_dir, mode, ladder):
    """With either ladder (``coarse``: TPUs' and GPUs' three rungs) and with
    rungs of the fine one (what a folder chooses on a CPU)."""
    if ladder != restorer.ladder:
        restorer = Restorer(*weights.load(small_weights_dir), max_window_seconds=2.0,
                            ladder=ladder)
    items = corpus()
    results = list(restorer.restore_many(iter(items), mode=mode, batch_size=3))
    assert len(results) == len(items)
    for (audio, rate), batched in zip(items, results):
        assert_same(batched, restorer.restore_full(audio, rate, mode=mode))


def test_results_come_in_order_however_the_batches_fill(restorer):
    """Batches of one bucket fill before others: the long input's windows run
    last, yet it is yielded first, and a small batch gives the same results."""
    items = [(voiced_signal(4.9, seed=6), SR)] + [(speech_like(0.4, seed=s), SR)
                                                  for s in range(5)]
    big = list(restorer.restore_many(items, batch_size=8))
    small = list(restorer.restore_many(items, batch_size=1))
    for (audio, rate), a, b in zip(items, big, small):
        assert a.audio.shape[0] == b.audio.shape[0] == audio.shape[0]
        assert_same(a, b)


def test_an_unusable_input_yields_its_error_and_the_rest_go_on(restorer):
    items = [(speech_like(0.5, seed=1), SR), (np.full(1000, np.nan, np.float32), SR),
             (np.zeros((0,), np.float32), SR), (speech_like(0.6, seed=2), SR)]
    results = list(restorer.restore_many(items, batch_size=2))
    assert isinstance(results[1], UserError) and "NaN" in str(results[1])
    assert isinstance(results[2], UserError)
    assert_same(results[0], restorer.restore_full(*items[0]))
    assert_same(results[3], restorer.restore_full(*items[3]))


def test_mode_2_restores_each_input_alone(restorer):
    items = corpus()[:3]
    for (audio, rate), result in zip(items, restorer.restore_many(items, mode=2, seed=5)):
        alone = restorer.restore_full(audio, rate, mode=2, seed=5)
        np.testing.assert_array_equal(result.audio, alone.audio)


def test_paths_are_read_ahead_and_a_missing_one_is_an_error(restorer, tmp_path):
    from vf_jax.audio import io as audio_io
    items = corpus()[:4]
    paths = []
    for i, (audio, rate) in enumerate(items):
        paths.append(tmp_path / f"{i}.wav")
        audio_io.write_audio(str(paths[-1]), audio, rate, "FLOAT")
    paths.insert(2, tmp_path / "missing.wav")
    results = list(restorer.restore_many(paths, batch_size=2, read_ahead=2))
    assert isinstance(results[2], UserError) and "not found" in str(results[2])
    for (audio, rate), result in zip(items, results[:2] + results[3:]):
        assert_same(result, restorer.restore_full(audio, rate))


def test_strength_mixes_the_time_aligned_input(restorer):
    x = 0.5 * voiced_signal(1.3, seed=9)
    restored = restorer.restore(x, SR)
    assert np.max(np.abs(restored)) < 1.0 / 0.6      # no peak rule below
    for strength in (0.0, 0.6):
        for result in (restorer.restore(x, SR, strength=strength),
                       next(restorer.restore_many([(x, SR)], strength=strength)).audio[:, 0]):
            np.testing.assert_allclose(result, strength * restored + (1 - strength) * x,
                                       rtol=0, atol=1e-5)


def test_loudness_input_gives_the_input_s_bs1770_loudness(restorer):
    import pyloudnorm
    meter = pyloudnorm.Meter(SR)
    x = 0.3 * speech_like(2.0, seed=10)
    out = restorer.restore(x, SR, loudness="input")
    assert abs(meter.integrated_loudness(out) - meter.integrated_loudness(x)) < 0.05
    assert abs(meter.integrated_loudness(restorer.restore(x, SR))
               - meter.integrated_loudness(x)) > 1.0      # the restoration alone differs
    loud = 0.99 * x / np.max(np.abs(x))                    # matching it would clip: peak rule
    assert np.max(np.abs(restorer.restore(loud, SR, loudness="input"))) <= 1.0 + 1e-6
    with pytest.raises(UserError):
        restorer.restore(x, SR, strength=1.5)
    with pytest.raises(UserError):
        next(restorer.restore_many([(x, SR)], loudness="louder"))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_rows_split_over_several_devices_give_the_same(small_weights_dir):
    """Each batch's rows shared among 4 simulated CPU devices (a mesh, as on
    a TPU host's chips): the same results as one input alone."""
    import json
    import os
    import subprocess
    import sys

    from conftest import TEST_XLA_FLAGS
    root = ROOT
    done = subprocess.run(
        [sys.executable, os.path.join(root, "tests", "scripts", "restore_many_devices.py"),
         small_weights_dir], capture_output=True, text=True, cwd=root, timeout=600,
        env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4 and result["worst"] < 1e-4

"""The ahead-of-time programs are what runs: built from the restorer's
networks and the loader's batch shapes, they give on the CPU what the
running code gives (``vf_jax.aot.programs``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vf_jax import compilation
from vf_jax.aot import programs
from vf_jax.audio.synthetic import voiced_signal
from vf_jax.data import loader
from vf_jax.models.vocoder import trim_center
from vf_jax.restoration import buckets, networks, weights
from vf_jax.restoration.finish import peak_rule
from vf_jax.restoration.restorer import Restorer

from helpers import SMALL_VOCODER

SR = 44100
SMALL = tuple(sorted(SMALL_VOCODER.items(), key=lambda kv: list(SMALL_VOCODER).index(kv[0])))


@pytest.fixture(scope="module")
def restorer(small_weights_dir):
    return Restorer(*weights.load(small_weights_dir))


def run_on_cpu(program, *args):
    """The program as the ahead-of-time path builds it, jitted for the host
    with the options the restorer's programs get."""
    return compilation.jit(program.fn)(*args)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_the_window_program_restores_what_the_restorer_restores(restorer, mode):
    x = voiced_signal(0.7)[:30000]
    size = networks.vocoder_size(restorer.meta)
    program = programs.restore(mode, 1, len(x) / SR, "bigru", size)
    frames, bucket = buckets.row_shape(len(x))
    wav = np.zeros((1, len(x) if mode == 2 else bucket * buckets.HOP), np.float32)
    wav[0, :len(x)] = x
    # The restorer draws window i's key as the i-th split of PRNGKey(seed).
    _, key = jax.random.split(jax.random.PRNGKey(3))
    out = run_on_cpu(program, restorer.variables, jnp.asarray(wav), key)
    ours = peak_rule(trim_center(np.asarray(out)[0], len(x), frames))
    expected = restorer.restore(x, SR, mode=mode, seed=3)
    assert program.arguments is not None and out.shape == (1, bucket * buckets.HOP)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)))


@pytest.mark.parametrize("mode", [0, 1])
def test_the_rows_program_is_the_folder_path_s_program(restorer, mode):
    size = networks.vocoder_size(restorer.meta)
    program = programs.restore_rows(2, 0.6, "bigru", size, mode=mode)
    _, bucket = buckets.row_shape(round(0.6 * SR))
    rng = np.random.default_rng(0)
    wav = np.zeros((2, bucket * buckets.HOP), np.float32)
    lengths = np.array([round(0.6 * SR), 20000], np.int32)
    for r, n in enumerate(lengths):
        wav[r, :n] = 0.1 * rng.standard_normal(n)
    shapes = program.batch(2)
    assert [s.shape for s in shapes] == [wav.shape, lengths.shape]
    ours = run_on_cpu(program, restorer.variables, jnp.asarray(wav), jnp.asarray(lengths))
    theirs = networks.restore_rows_jit(restorer.variables, jnp.asarray(wav),
                                       jnp.asarray(lengths), n_frames=bucket, kind="bigru",
                                       size=size, precision="float32", width=1.0,
                                       high_frequency=mode == 1)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_narrower_network_s_program_takes_its_width():
    """The rows program of a narrow network takes that network's variables."""
    program = programs.restore_rows(1, 0.5, "dnn", SMALL, width=0.25)
    narrow = jax.tree_util.tree_leaves(program.replicated[0]["analysis"]["params"])
    full = jax.tree_util.tree_leaves(programs.restore_rows(1, 0.5, "dnn", SMALL)
                                     .replicated[0]["analysis"]["params"])
    assert sum(x.size for x in narrow) < sum(x.size for x in full) / 4


def first_batch(sources, **kwargs) -> dict:
    return next(iter(loader.make_loader(sources, batch_size=2, seed=0, crop_seconds=0.25,
                                        rir_seconds=0.1, shard_index=0, shard_count=1,
                                        **kwargs)))


@pytest.mark.parametrize("kind", ["speech", "speech only", "pairs", "pairs and simulation"])
def test_the_loader_s_batch_shapes_are_its_batches(kind):
    from vf_jax.audio import io as audio_io
    clip = audio_io.to_pcm16(0.1 * voiced_signal(0.5))
    kwargs = {"speech only": dict(speech_only=True), "pairs": dict(paired_fraction=1.0),
              "pairs and simulation": dict(paired_fraction=0.5)}.get(kind, {})
    records = ([{"clean": clip, "degraded": clip}] * 4 if "pairs" in kind
               else [{"audio": clip}] * 4)
    batch = first_batch(loader.Sources(speech=records), **kwargs)
    shapes = loader.batch_shapes(2, 0.25, 0.1, **kwargs)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == shapes


def test_the_training_programs_take_the_loader_s_batches():
    config = programs.analysis_config("dnn", 0.5)
    train = programs.analysis_train("dnn", 2, 0.5, config=config).batch(4)[0]
    assert {k: (s.shape, s.dtype) for k, s in train.items()} == \
        loader.config_batch_shapes(config, 4)
    finetune = programs.analysis_finetune("dnn", 2, 0.5, paired_fraction=0.5).batch(2)[0]
    assert {"degraded", "paired", "noise", "rir"} <= set(finetune)
    vocoder = programs.vocoder_train(False, 1, 0.25).batch(2)[0]
    assert set(vocoder) == {"speech", "speech_length"}

"""Helpers shared by the tests and their subprocess scripts (``scripts/``):
small training configs, fixed batches, and steps run the way the loop runs them."""

import os
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)          # configs/ and train/ as the commands see them

from vf_jax import config_files, testing  # noqa: E402
from vf_jax.data.clip import load_clip  # noqa: E402
from vf_jax.training.vocoder import step as vts  # noqa: E402

# --------------------------------------------------------- restoration ---

SMALL_VOCODER = testing.SMALL_VOCODER


def write_small_weights(path: str) -> str:
    """A weights folder at ``path`` with seeded random VF-BiGRU analysis and a
    small generator (:data:`SMALL_VOCODER`); returns ``path``."""
    return testing.write_seeded_weights(path, "bigru", SMALL_VOCODER)


# ---------------------------------------------------------------- data ---

def build_interrupted_then_again(monkeypatch, at_load: int, build):
    """``build()`` interrupted (KeyboardInterrupt) at the ``at_load``-th read
    of a staged array, then run again whole: ``(log, files read from the
    source by the second run)``."""
    from vf_jax.data import sources
    real_load = sources.Staging.load
    calls = {"load": 0}

    def interrupted_load(path):
        calls["load"] += 1
        if calls["load"] == at_load:
            raise KeyboardInterrupt
        return real_load(path)
    monkeypatch.setattr(sources.Staging, "load", staticmethod(interrupted_load))
    try:
        build()
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"the build ended before load {at_load}")
    monkeypatch.setattr(sources.Staging, "load", staticmethod(real_load))
    reads = []
    real_read = sources.audio_io.read_audio
    monkeypatch.setattr(sources.audio_io, "read_audio",
                        lambda path: reads.append(path) or real_read(path))
    return build(), reads


# ----------------------------------------------------------- analysis ---

def analysis_config(model: str, crop_seconds: float = 0.5):
    """A paper config of ``model`` for short crops, learning fast (warm-up 1 step)."""
    c = config_files.get_config("resunet", model)
    c.crop_seconds = crop_seconds
    c.learning_rate, c.warmup_steps = 1e-3, 1
    return c


# ------------------------------------------------------------ vocoder ---

CROP = 4410
# Every test that trains runs the same two programs: batches of BATCH crops,
# the loop's update (jit over a one-device mesh, donated state), generator-only
# before step GAN_START and adversarial from it. Compiled once; the session's
# persistent compilation cache serves every later test, run and process.
BATCH = 8
GAN_START = 30


def vocoder_config(**overrides):
    """The tiny config, smaller still: a generator step takes ~30 ms on a CPU.
    Every kind of discriminator, fewer of each (two waveform scales, one
    spectrogram resolution, two sub-bands): compiling is what costs here."""
    c = config_files.get_config("tfgan_tiny")
    c.generator.update({"channels": 32, "cond_channels": 16, "resstack_depth": 2})
    c.discriminators.update({"waveform_channels": 4, "max_channels": 16,
                             "spectrogram_channels": 4, "scales": 2,
                             "resolutions": ((512, 50, 240),), "subbands": 2})
    c.stft_resolutions = ((1024, 120, 600), (512, 50, 240))
    c.crop_seconds = CROP / 44100
    c.batch_size_per_device = BATCH
    c.eval_examples, c.eval_batch_size_per_device = 2, 2
    c.log_every, c.quiet = 1, True
    c.discriminator_start = GAN_START
    for k, v in overrides.items():
        c[k] = v
    return c


def clip_batch(n=BATCH):
    """Fixed crops of the shipped clip (real speech)."""
    clip = load_clip()
    speech = np.stack([clip[44100 + i * 9000:44100 + i * 9000 + CROP] for i in range(n)])
    return {"speech": speech.astype(np.float32), "speech_length": np.full((n,), CROP, np.int32)}


def phased(config, build):
    """``(state, batch) -> (state, metrics)`` running ``build(adversarial)``'s
    program for the state's step, as the loop chooses (it counts on the host;
    this reads the step back)."""
    programs = {}

    def step(state, batch):
        adversarial = vts.phase(config, int(np.asarray(state.step).reshape(-1)[0]))
        if adversarial not in programs:
            programs[adversarial] = build(adversarial)
        return programs[adversarial](state, batch)
    return step


def mesh_step(config):
    """The loop's update (jit over a one-device mesh, donated state)."""
    from vf_jax.training import parallel
    mesh = parallel.make_mesh(jax.devices()[:1])
    return phased(config, lambda adversarial: parallel.jit_step(
        vts.make_step(config, None, adversarial), mesh)), mesh


COMPARED = ("loss", "spectral_convergence", "mel_l1", "discriminator_loss")


def gan_step_on_devices(config, init) -> dict:
    """One GAN step from ``init`` (on the host) with every device: jit over
    an 8-device mesh, and pmap; each as (final state on the host, its
    :data:`COMPARED` metrics). Run in ``scripts/vocoder_data_parallel.py``."""
    from vf_jax.training import parallel
    mesh = parallel.make_mesh(jax.devices())
    devices = jax.local_device_count()
    batch = clip_batch()
    metrics = lambda m, first: {k: float(np.asarray(first(m[k])).reshape(-1)[0])
                                for k in COMPARED}
    result = {"devices": len(jax.devices())}
    step = parallel.jit_step(vts.make_step(config, None, True), mesh)
    state, m = step(parallel.place_replicated(init, mesh), parallel.global_batch(batch, mesh))
    result["jit8"] = (jax.device_get(state), metrics(m, lambda x: x))
    step = parallel.pmap_step(vts.make_step(config, parallel.AXIS, True))
    state, m = step(parallel.replicate(init),
                    {k: v.reshape(devices, -1, *v.shape[1:]) for k, v in batch.items()})
    result["pmap"] = (jax.device_get(jax.tree_util.tree_map(lambda x: x[0], state)),
                      metrics(m, lambda x: x[0]))
    return result


def assert_same_tree(a, b):
    """Two pytrees of arrays: the same structure and bit-identical leaves."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

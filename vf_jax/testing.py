"""What the tests and the benchmarks both need: weights folders of seeded
random networks, written as ``python -m vf_jax export`` writes one. (Test
audio is :mod:`vf_jax.audio.synthetic`'s.)"""

from __future__ import annotations

import numpy as np

# A generator small enough that restoring's behaviour (files, rates,
# channels, windows, errors) compiles and runs ten times faster than with
# the published sizes; parity with the original uses the published sizes.
SMALL_VOCODER = {"channels": 32, "cond_channels": 16, "resstack_depth": 2}


def write_seeded_weights(path: str, kind: str = "bigru", vocoder_size: dict | None = None,
                         seed: int = 0) -> str:
    """A weights folder at ``path`` with a seeded random analysis network
    ``kind`` and generator (``vocoder_size``; None: the published sizes);
    returns ``path``."""
    import jax
    import jax.numpy as jnp

    from vf_jax.compilation import jit_init
    from vf_jax.models import registry as models
    from vf_jax.models import weight_norm
    from vf_jax.models.vocoder import TFGANGenerator
    from vf_jax.restoration import weights
    a_key, v_key = jax.random.split(jax.random.PRNGKey(seed))
    analysis = jit_init(models.analysis_module(kind).init)(a_key, jnp.zeros((1, 8, 128)))
    vocoder = jit_init(TFGANGenerator(**(vocoder_size or {})).init)(
        v_key, jnp.zeros((1, 8, 128)))
    # N(0, 0.02) kernels (MelGAN's training start) make near-silence in a
    # small generator; He-scaled ones make sound, as trained weights do.
    rng = np.random.default_rng(seed + 1)
    vocoder = jax.tree_util.tree_map_with_path(
        lambda p, x: (rng.standard_normal(x.shape) * np.sqrt(
            (0.02 if p[1].key == "conv_out" else 2.0) / np.prod(x.shape[:-1])))
        .astype(np.float32) if p[-1].key == "kernel" else x, vocoder)
    variables = jax.tree_util.tree_map(np.asarray, {"analysis": dict(analysis),
                                                    "vocoder": dict(vocoder)})
    assert not weight_norm.is_weight_normed(variables["vocoder"])
    weights.save(path, variables, weights.describe(kind, vocoder_size=vocoder_size))
    return path

"""Which network each weights folder holds, and their variable templates."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vf_jax.models.analysis import VFDNN, ReleasedAnalysis, VFBiGRU, VFUNet
from vf_jax.models.vocoder import TFGANGenerator

ANALYSIS_KINDS = {"released": ReleasedAnalysis, "unet": VFUNet, "bigru": VFBiGRU,
                  "dnn": VFDNN}


def analysis_module(kind: str = "released", width: float = 1.0):
    """The analysis network ``kind``; ``width`` scales its hidden sizes (1: published)."""
    return ANALYSIS_KINDS[kind](width=width)


@functools.lru_cache(maxsize=4)
def analysis_template(kind: str = "released", width: float = 1.0):
    """Shapes of the analysis variables (``params``, ``batch_stats``)."""
    model = analysis_module(kind, width)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 64, 128))))


@functools.lru_cache(maxsize=1)
def vocoder_template():
    return jax.eval_shape(lambda: TFGANGenerator().init(jax.random.PRNGKey(0),
                                                        jnp.zeros((1, 8, 128))))

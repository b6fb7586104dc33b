"""``python -m vf_jax export``: a weights folder from any trained pair.

Either half may come from a training run folder (``python -m train.analysis``
or ``python -m train.vocoder``: its ``config.json`` says which network, its
checkpoints hold the weights, of which only the network's part is read:
:func:`vf_jax.training.checkpoints.restore_parts`) or from a weights folder (e.g. the converted
published weights). The result loads in the restorer like a converted folder,
so any analysis network (released, VF-UNet, VF-BiGRU, VF-DNN) pairs with any
vocoder. From a vocoder run the EMA generator is taken, weight norm folded.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from vf_jax.errors import UserError
from vf_jax.models import weight_norm
from vf_jax.models.vocoder import GENERATOR_SIZES
from vf_jax.restoration import weights
from vf_jax.training import checkpoints
from vf_jax.training import loop as training_loop


def load_analysis(path: str, which: str = "best") -> tuple[dict, str, float, dict]:
    """``(variables {"params", "batch_stats"}, kind, width, provenance)`` from a
    weights folder or an analysis training run."""
    if weights.is_weights_dir(path):
        variables, meta = weights.load(path)
        return (variables["analysis"], meta["analysis"]["kind"], weights.analysis_width(meta),
                {"weights": os.path.abspath(path)})
    config = training_loop.read_config(path)
    if "model" not in config:
        raise UserError(f"{path} is not an analysis training run (no model in its config)")
    from vf_jax.training.analysis import step as ts
    variables, step = checkpoints.restore_parts(path, ("params", "batch_stats"), which,
                                                ts.BEST_METRIC)
    return (variables, config.model, float(config.get("model_width", 1.0)),
            {"run": os.path.abspath(path), "step": int(step)})


def load_vocoder(path: str, which: str = "best") -> tuple[dict, dict, dict]:
    """``(folded generator params, sizes, provenance)`` from a weights folder
    or a vocoder training run (its EMA generator)."""
    if weights.is_weights_dir(path):
        variables, meta = weights.load(path)
        sizes = {k: meta["vocoder"][k] for k in GENERATOR_SIZES if k in meta["vocoder"]}
        return variables["vocoder"]["params"], sizes, {"weights": os.path.abspath(path)}
    config = training_loop.read_config(path)
    if "generator" not in config:
        raise UserError(f"{path} is not a vocoder training run (no generator in its config)")
    from vf_jax.training.vocoder import train as vocoder_training
    parts, step = checkpoints.restore_parts(path, ("generator_ema",), which,
                                            vocoder_training.BEST_METRIC)
    params = weight_norm.fold(parts["generator_ema"])
    sizes = {k: int(config.generator[k]) for k in GENERATOR_SIZES}
    return params, sizes, {"run": os.path.abspath(path), "step": int(step)}


def export(analysis: str, vocoder: str, out: str, which: str = "best",
           overwrite: bool = False) -> dict:
    """Write the weights folder ``out``; returns its description."""
    for path in (analysis, vocoder):
        if not os.path.isdir(path):
            raise UserError(f"no such folder: {path}")
    analysis_vars, kind, width, analysis_from = load_analysis(analysis, which)
    vocoder_params, sizes, vocoder_from = load_vocoder(vocoder, which)
    published = {"channels": 1024, "cond_channels": 512, "resstack_depth": 8}
    meta = weights.describe(kind, {"analysis": analysis_from, "vocoder": vocoder_from},
                            [f"exported: analysis {kind}, vocoder {sizes or published}"],
                            vocoder_size=sizes if sizes and sizes != published else None,
                            analysis_width=width)
    variables = {"analysis": jax.tree_util.tree_map(np.asarray, analysis_vars),
                 "vocoder": {"params": jax.tree_util.tree_map(np.asarray, vocoder_params)}}
    weights.save(out, variables, meta, overwrite=overwrite)
    return meta

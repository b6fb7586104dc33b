"""Training the TFGAN vocoder: ``train_and_evaluate(config, workdir)``.

The command line is ``python -m train.vocoder`` (``train/vocoder.py``).
Sections: mesh, input, model and optimisers, validation, the loop (the shared
:func:`vf_jax.training.loop.run`: resume, jit or pmap, logs, saves, stops).

The vocoder learns on clean speech only, separately from the analysis network
(the VoiceFixer author, voicefixer_main issue 12). ``config.init_weights``
starts the generator from a converted weights folder (the published vocoder)
for fine-tuning.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from vf_jax.errors import UserError
from vf_jax.training import loop as training_loop
from vf_jax.training import parallel
from vf_jax.training.vocoder import step as vts

BEST_METRIC = "val/mel_l1"


# ---------------------------------------------------------- weights ---

def generator_from_weights(config: ml_collections.ConfigDict, path: str):
    """A weights folder's (folded) vocoder as weight-normed parameters for
    ``config.generator``; its sizes must match."""
    from vf_jax.models import weight_norm
    from vf_jax.restoration import weights
    variables, meta = weights.load(path)
    folded = variables["vocoder"]["params"]
    template = jax.eval_shape(lambda: vts.generator_module(config).init(
        jax.random.PRNGKey(0), jax.numpy.zeros((1, 8, 128))))["params"]
    try:
        params = weight_norm.unfold(folded, template)
        shapes_match = all(
            np.shape(a) == b.shape for a, b in zip(jax.tree_util.tree_leaves(params),
                                                   jax.tree_util.tree_leaves(template)))
    except KeyError:
        shapes_match = False
    if not shapes_match:
        raise UserError(f"{path}: its vocoder does not have the generator sizes of the config "
                        f"({dict(config.generator)})")
    return jax.tree_util.tree_map(np.asarray, params)


# -------------------------------------------------------- validation ---

def evaluate(eval_fn, params, batches, mesh):
    """Validation metrics over ``batches`` (means) and the first batch's media."""
    totals, media = {}, None
    for batch in batches:
        out = jax.device_get(eval_fn(params, parallel.global_batch(batch, mesh)))
        for k, v in out.items():
            if np.ndim(v) == 0:
                totals[k] = totals.get(k, 0.0) + float(v)
        if media is None:
            media = {k: np.asarray(v) for k, v in out.items() if np.ndim(v) > 0}
    values = {k[:-len("_sum")]: v / totals["examples"] for k, v in totals.items()
              if k.endswith("_sum")}
    return values, media


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
    """Train until ``config.num_steps`` (or a stop); returns the final state
    (on the host, one copy)."""
    vts.remat_parts(config)       # a bad config.remat fails here, before any data is read
    # ------------------------------------------------------------- mesh ---
    mesh = training_loop.mesh_for(config)
    local_devices = jax.local_device_count()
    host_batch = config.batch_size_per_device * local_devices

    # ------------------------------------------------------------ input ---
    from vf_jax.data import loader
    data = loader.training_loader(config, host_batch, speech_only=True)
    eval_every = config.eval_every
    eval_batches = (loader.validation_batches(
        config, config.eval_batch_size_per_device * local_devices, speech_only=True)
        if eval_every else [])

    # --------------------------------------------- model and optimisers ---
    init = generator_from_weights(config, config.init_weights) if config.init_weights else None
    state = vts.init_state(config, jax.random.PRNGKey(config.seed), init)

    # ------------------------------------------------------- validation ---
    eval_fn = vts.jit_eval_step(config, mesh, config.media_examples) \
        if eval_every else None
    rate = vts.FRONT_END.sample_rate

    def validate(state, step: int, first: bool, logs) -> dict:
        values, media = evaluate(eval_fn, state.generator_ema, eval_batches, mesh)
        logs.scalars(step, values, prefix="val/")
        for i in range(len(media["real"]) if logs.active else 0):
            logs.mel(f"mel/{i}/generated", step, media["generated_mel"][i])
            logs.audio(f"audio/{i}/generated", step, media["generated"][i], rate)
            if first:   # the real crops do not change: once per run
                logs.mel(f"mel/{i}/real", step, media["real_mel"][i])
                logs.audio(f"audio/{i}/real", step, media["real"][i], rate)
        return {"val/" + k: v for k, v in values.items()}

    # ------------------------------------------------------------- loop ---
    task = training_loop.Task(
        make_step=lambda axis, adversarial: vts.make_step(config, axis, adversarial),
        phase=lambda step: vts.phase(config, step), fast_compile=vts.compiles_fast,
        validate=validate if eval_every else None, best_metric=BEST_METRIC)
    return training_loop.run(config, workdir, state, data, task, mesh)

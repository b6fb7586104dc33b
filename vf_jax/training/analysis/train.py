"""Training an analysis network: ``train_and_evaluate(config, workdir)``.

The command line is ``python -m train.analysis`` (``train/analysis.py``); the
demo calls this directly. Sections: mesh, input, model and optimiser,
validation, then the loop (:func:`vf_jax.training.loop.run`: checkpoint,
update step, steps, logs, validation, saves).

Re-running with the same ``workdir`` resumes from the newest checkpoint that
reads back (parameters, BatchNorm statistics, optimiser, PRNG, the data
iterator's position), so a stopped-and-resumed run ends where an uninterrupted
one does. SIGTERM (preemption) or ``config.max_train_seconds`` saves and
returns. A non-finite loss or gradient stops with the step number and leaves
the last good checkpoint.

Fine-tuning (``configs/finetune.py``): ``config.init_weights`` starts from a
trained network (:func:`starting_point`), ``config.dataset = "paired"`` trains
on the user's pairs (:mod:`vf_jax.data.loader`), ``config.freeze`` keeps named
parts fixed, ``config.batch_norm = "frozen"`` keeps the statistics, and each
validation logs the starting model's metrics beside the current ones.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from vf_jax.errors import UserError
from vf_jax.training import loop as training_loop
from vf_jax.training import parallel
from vf_jax.training.analysis import step as ts
from vf_jax.training.loop import TrainingStopped  # noqa: F401  (the loop's stop)

BEST_METRIC = ts.BEST_METRIC


def evaluate(eval_fn, params, batch_stats, batches, mesh, seed: int):
    """Validation metrics over ``batches`` (means) and the first batch's media."""
    totals, media = {}, None
    for i, batch in enumerate(batches):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1_000_000 + i)
        out = jax.device_get(eval_fn(params, batch_stats, parallel.global_batch(batch, mesh), key))
        for k in ("mel_l1_sum", "input_mel_l1_sum", "count", "mel_lsd_sum",
                  "input_mel_lsd_sum", "mel_sispnr_sum", "input_mel_sispnr_sum", "examples"):
            totals[k] = totals.get(k, 0.0) + float(out[k])
        if media is None:
            media = {k: np.asarray(v) for k, v in out.items() if np.ndim(v) > 0}
    values = {"mel_l1": totals["mel_l1_sum"] / totals["count"],
              "input_mel_l1": totals["input_mel_l1_sum"] / totals["count"],
              "mel_lsd": totals["mel_lsd_sum"] / totals["examples"],
              "input_mel_lsd": totals["input_mel_lsd_sum"] / totals["examples"],
              "mel_sispnr": totals["mel_sispnr_sum"] / totals["examples"],
              "input_mel_sispnr": totals["input_mel_sispnr_sum"] / totals["examples"]}
    return values, media


def _listen(media: dict, vocoder, length: int) -> np.ndarray:
    """The restored mels as sound: the vocoder ``(params, size)`` when given,
    else Griffin-Lim."""
    if vocoder is not None:
        from vf_jax.restoration import networks
        return networks.vocode(vocoder[0], media["restored_mel"], length, vocoder[1])
    from vf_jax.audio import mel_inversion
    return np.asarray(mel_inversion.griffin_lim(media["restored_mel"], ts.FRONT_END, length))


def _load_vocoder(path: str):
    """A weights folder's vocoder as ``(params, size)``, or None."""
    if not path:
        return None
    from vf_jax.restoration import networks, weights
    variables, meta = weights.load(path)
    return variables["vocoder"]["params"], networks.vocoder_size(meta)


def restore_log_mel(config: ml_collections.ConfigDict, state, wav) -> np.ndarray:
    """A trained network on 44.1 kHz audio ``(samples,)`` or ``(B, samples)``:
    the restored log10 mel ``(..., frames, 128)`` (eval mode)."""
    import jax.numpy as jnp

    from vf_jax.audio import mel as mel_lib
    model = ts.network(config)

    @jax.jit
    def run(variables, wav):
        mel, _ = mel_lib.mel_spectrogram(wav, ts.FRONT_END)
        return model.apply(variables, mel, train_bn=False, deterministic=True, valid=None)
    return np.asarray(run({"params": state.params, "batch_stats": state.batch_stats},
                          jnp.asarray(wav, jnp.float32)))


def starting_point(config: ml_collections.ConfigDict) -> dict | None:
    """The analysis variables ``{"params", "batch_stats"}`` of
    ``config.init_weights`` (a weights folder, e.g. the converted published
    model or an export, or an analysis training run: its best checkpoint), or
    None. Sets ``config.model`` to their network when it is empty; a different
    one is an error."""
    if not config.init_weights:
        if not config.model:
            raise UserError("config.model is empty: give --config.init_weights=FOLDER (its "
                            "network is used) or --config.model")
        return None
    import os

    from vf_jax.training import export
    if not os.path.isdir(config.init_weights):
        raise UserError(f"init_weights: no such folder: {config.init_weights}")
    variables, kind, width, _ = export.load_analysis(config.init_weights)
    if config.model and config.model != kind:
        raise UserError(f"init_weights holds a {kind} analysis network, but config.model is "
                        f"{config.model} (leave it empty to take the folder's)")
    config.model, config.model_width = kind, width
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def start_from(state: ts.TrainState, variables: dict) -> ts.TrainState:
    """``state`` with the parameters and statistics of ``variables`` (same
    network: every array's path and shape are checked)."""
    import jax.numpy as jnp
    for part in ("params", "batch_stats"):
        ours, theirs = getattr(state, part), variables[part]
        shapes = lambda t: [(path, tuple(np.shape(x)))
                            for path, x in jax.tree_util.tree_flatten_with_path(t)[0]]
        if shapes(ours) != shapes(theirs):
            raise UserError(f"init_weights' {part} do not fit the {part} of the network")
    cast = lambda t: jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), t)
    return state.replace(params=cast(variables["params"]),
                         batch_stats=cast(variables["batch_stats"]))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
    """Train until ``config.num_steps`` (or a stop); returns the final state
    (on the host, one copy). The loop is :func:`vf_jax.training.loop.run`."""
    # ------------------------------------------------------------- mesh ---
    mesh = training_loop.mesh_for(config)
    local_devices = jax.local_device_count()
    host_batch = config.batch_size_per_device * local_devices

    # ------------------------------------------------------------ input ---
    from vf_jax.data import loader
    data = loader.training_loader(config, host_batch)
    eval_every = config.eval_every
    eval_batches = (loader.validation_batches(
        config, config.eval_batch_size_per_device * local_devices) if eval_every else [])

    # ---------------------------------------------- model and optimiser ---
    # From config.init_weights when given (fine-tuning), else fresh; a resumed
    # run continues from its checkpoint instead (the loop).
    start = starting_point(config)
    state = ts.init_state(config, jax.random.PRNGKey(config.seed))
    if start is not None:
        state = start_from(state, start)

    # ------------------------------------------------------- validation ---
    eval_fn = ts.jit_eval_step(config, mesh, config.media_examples) if eval_every \
        else None
    vocoder = _load_vocoder(config.vocoder_weights) if eval_every else None
    crop = int(round(config.crop_seconds * ts.FRONT_END.sample_rate))
    rate = ts.FRONT_END.sample_rate

    start_values = {}

    def validate(state, step: int, first: bool, logs) -> dict:
        values, media = evaluate(eval_fn, state.params, state.batch_stats, eval_batches,
                                 mesh, config.seed)
        if start is not None:
            # The starting model on the same examples, beside each metric
            # (val/start_mel_l1 by val/mel_l1): does fine-tuning help?
            if not start_values:
                placed = parallel.place_replicated(start, mesh)
                before, _ = evaluate(eval_fn, placed["params"], placed["batch_stats"],
                                     eval_batches, mesh, config.seed)
                start_values.update({f"start_{k}": v for k, v in before.items()
                                     if not k.startswith("input_")})
            values = {**values, **start_values}
        logs.scalars(step, values, prefix="val/")
        heard = _listen(media, vocoder, crop) if logs.active else None
        for i in range(len(media["restored_mel"]) if logs.active else 0):
            logs.mel(f"mel/{i}/restored", step, media["restored_mel"][i])
            logs.audio(f"audio/{i}/restored", step, heard[i], rate)
            if first:   # inputs and targets do not change: once per run
                logs.mel(f"mel/{i}/degraded", step, media["degraded_mel"][i])
                logs.mel(f"mel/{i}/clean", step, media["clean_mel"][i])
                logs.audio(f"audio/{i}/degraded", step, media["degraded"][i], rate)
                logs.audio(f"audio/{i}/clean", step, media["clean"][i], rate)
        return {"val/" + k: v for k, v in values.items()}

    # ------------------------------------------------------------- loop ---
    task = training_loop.Task(make_step=lambda axis: ts.make_step(config, axis),
                              validate=validate if eval_every else None,
                              best_metric=BEST_METRIC)
    return training_loop.run(config, workdir, state, data, task, mesh)

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
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from vf_jax.training import loop as training_loop
from vf_jax.training import parallel
from vf_jax.training.analysis import step as ts
from vf_jax.training.loop import TrainingStopped  # noqa: F401  (the loop's stop)

BEST_METRIC = "val/mel_l1"


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
        from vf_jax.restoration import restore
        return restore.vocode(vocoder[0], media["restored_mel"], length, vocoder[1])
    from vf_jax.audio import mel_inversion
    return np.asarray(mel_inversion.griffin_lim(media["restored_mel"], ts.FRONT_END, length))


def _load_vocoder(path: str):
    """A weights folder's vocoder as ``(params, size)``, or None."""
    if not path:
        return None
    from vf_jax.restoration import restore, weights
    variables, meta = weights.load(path)
    return variables["vocoder"]["params"], restore.vocoder_size(meta)


def restore_log_mel(config: ml_collections.ConfigDict, state, wav) -> np.ndarray:
    """A trained network on 44.1 kHz audio ``(samples,)`` or ``(B, samples)``:
    the restored log10 mel ``(..., frames, 128)`` (eval mode)."""
    import jax.numpy as jnp

    from vf_jax.audio import mel as mel_lib
    from vf_jax.models import registry as models
    model = models.analysis_module(config.model)

    @jax.jit
    def run(variables, wav):
        mel, _ = mel_lib.mel_spectrogram(wav, ts.FRONT_END)
        return model.apply(variables, mel, train_bn=False, deterministic=True, valid=None)
    return np.asarray(run({"params": state.params, "batch_stats": state.batch_stats},
                          jnp.asarray(wav, jnp.float32)))


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
    state = ts.init_state(config, jax.random.PRNGKey(config.seed))

    # ------------------------------------------------------- validation ---
    eval_fn = ts.jit_eval_step(config, mesh, config.media_examples) if eval_every \
        else None
    vocoder = _load_vocoder(config.vocoder_weights) if eval_every else None
    crop = int(round(config.crop_seconds * ts.FRONT_END.sample_rate))
    rate = ts.FRONT_END.sample_rate

    def validate(state, step: int, first: bool, logs) -> dict:
        values, media = evaluate(eval_fn, state.params, state.batch_stats, eval_batches,
                                 mesh, config.seed)
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

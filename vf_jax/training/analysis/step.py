"""Training the analysis networks: state, optimiser, loss and the update step.

One step function serves every way of running it: ``jax.jit`` over a device
mesh with the batch sharded (:func:`jit_step`), or ``jax.pmap``
(:func:`pmap_step`). Inside it, on device: the GSR degradations of the raw
batch (:mod:`vf_jax.audio.degradations`), the mel front end of the degraded input and
of the clean target, the network, the loss and the optimiser update.

From ``docs/voicefixer.md``, "Training": Adam with AMSGrad, betas (0.5,
0.999), learning rate 5e-4 with a linear warm-up over 100 steps, then x0.9
every 40k steps; loss the mean L1 between the restored and the clean log10 mel
("Two systems, one name"), or the L1 on linear mel magnitudes (the paper's
text) by choice.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vf_jax import backends, compilation
from vf_jax.audio import degradations
from vf_jax.audio import mel as mel_lib
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.evaluation import metrics as metrics_lib
from vf_jax.models import registry as models
from vf_jax.models.masks import mask_frames
from vf_jax.models.normalization import batch_axis
from vf_jax.training import optim, parallel

FRONT_END = mel_lib.FRONT_ENDS[SAMPLE_RATE]
BEST_METRIC = "val/mel_l1"          # the validation metric whose best checkpoint is kept


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def learning_rate(config: ml_collections.ConfigDict):
    """``lr * step / warmup`` up to ``warmup``, then ``lr * decay ** (step // every)``
    (the original's ``get_lr_lambda``)."""
    base, warmup = config.learning_rate, max(config.warmup_steps, 1)
    decay, every = config.lr_decay, config.lr_decay_every

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        return base * jnp.where(step <= warmup, step / warmup,
                                decay ** jnp.floor(step / every))
    return schedule


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AMSGrad with the schedule, after optional global-norm clipping
    (:func:`vf_jax.training.optim.adam`); nothing for the parameters that
    ``config.freeze`` names (:func:`vf_jax.training.optim.frozen_mask`)."""
    return optim.with_frozen(optim.adam(config, learning_rate(config), amsgrad=True),
                             frozen_patterns(config))


def frozen_patterns(config: ml_collections.ConfigDict) -> str:
    """``config.freeze``; "" for the configs of runs from before fine-tuning
    (``python -m vf_jax export`` rebuilds their state from them)."""
    return config.get("freeze", "").strip()


def batch_norm_setting(config: ml_collections.ConfigDict) -> str:
    """``config.batch_norm`` (``update`` | ``frozen``); ``update`` for runs
    from before the setting."""
    value = config.get("batch_norm", "update")
    if value not in ("update", "frozen"):
        raise ValueError(f"batch_norm must be update or frozen, got {value!r}")
    return value


def keep_frozen_statistics(config: ml_collections.ConfigDict, new, old):
    """BatchNorm statistics after a step: ``old`` everywhere with
    ``config.batch_norm == "frozen"``, and in the parts ``config.freeze``
    names; ``new`` elsewhere."""
    if batch_norm_setting(config) == "frozen":
        return old
    if not frozen_patterns(config) or not jax.tree_util.tree_leaves(old):
        return new
    # Not strict: a pattern may name parts without statistics (a Dense layer).
    mask = optim.frozen_mask(old, frozen_patterns(config), strict=False)
    return jax.tree_util.tree_map(lambda f, n, o: o if f else n, mask, new, old)


def network(config: ml_collections.ConfigDict):
    """The config's analysis network (``model`` at ``model_width``; runs from
    before the width setting have the published sizes)."""
    return models.analysis_module(config.model, config.get("model_width", 1.0))


def init_state(config: ml_collections.ConfigDict, rng) -> TrainState:
    """Fresh parameters, BatchNorm statistics and optimiser state (one jitted
    program, :func:`vf_jax.compilation.jit_init`: eagerly, every
    initialiser's draw compiles on its own)."""
    def init(rng):
        init_rng, rng = jax.random.split(rng)
        model = network(config)
        frames = FRONT_END.num_frames(int(config.crop_seconds * FRONT_END.sample_rate))
        variables = model.init(init_rng, jnp.ones((1, frames, FRONT_END.n_mels)))
        params = variables["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          batch_stats=variables.get("batch_stats", {}),
                          opt_state=optimizer(config).init(params), rng=rng)
    return compilation.jit_init(init)(rng)


def mel_loss_sum(restored_log, clean_mel, valid, kind: str = "log_l1"):
    """``(sum, count)`` of the L1 over valid frames and every bin: ``log_l1``
    between ``restored_log`` and ``log10(max(clean, 1e-8))``, ``linear_l1``
    between the mel magnitudes. The loss is ``sum / count`` over the global
    batch."""
    if kind == "log_l1":
        diff = jnp.abs(restored_log - mel_lib.to_log(clean_mel))
    elif kind == "linear_l1":
        diff = jnp.abs(mel_lib.from_log(restored_log) - clean_mel)
    else:
        raise ValueError(f"unknown loss {kind!r}")
    mask = (jnp.arange(diff.shape[1])[None, :] < valid[:, None]).astype(diff.dtype)
    return jnp.sum(diff * mask[..., None]), jnp.sum(mask) * diff.shape[-1]


def degrade_and_analyse(batch, keys, degradation: ml_collections.ConfigDict):
    """The degradations (one key per example) and the front end, on device:
    ``(degraded, target, degraded mel, clean mel, valid frames)``; waveforms
    ``(B, samples)``, mels ``(B, T, mels)`` linear, ``valid`` ``(B,)``.

    A batch of pairs (:class:`vf_jax.data.loader.CropPair`) has its own
    ``degraded`` side for the ``speech``; where it also has ``noise`` and
    ``rir``, the examples whose ``paired`` flag is 0 take the simulation of
    the clean side instead."""
    if "degraded" in batch:
        degraded, target = batch["degraded"], batch["speech"]
        if "noise" in batch:
            simulated, simulated_target = degradations.degrade_batch(
                keys, batch["speech"], batch["noise"], batch["rir"], degradation)
            real = batch["paired"][:, None] > 0
            degraded = jnp.where(real, degraded, simulated)
            target = jnp.where(real, target, simulated_target)
    else:
        degraded, target = degradations.degrade_batch(
            keys, batch["speech"], batch["noise"], batch["rir"], degradation)
    # Both mels from one STFT: each distinct FFT costs seconds to compile on a TPU.
    mels, _ = mel_lib.mel_spectrogram(jnp.stack([degraded, target]), FRONT_END)
    mel_in, mel_clean = mels[0], mels[1]
    valid = 1 + batch["speech_length"] // FRONT_END.hop
    return degraded, target, mel_in, mel_clean, valid


def make_features(config: ml_collections.ConfigDict):
    """``(batch, keys)`` -> ``(degraded mel, clean mel, valid frames)``
    (:func:`degrade_and_analyse`)."""
    def features(batch, keys):
        return degrade_and_analyse(batch, keys, config.degradation)[2:]
    return features


def make_update(config: ml_collections.ConfigDict, axis_name: str | None = None):
    """The network's part of a step: ``(state, mel_in, mel_clean, valid,
    dropout_rng) -> (state without its rng advanced, metrics)`` (mels
    ``(B, T, mels)``, linear; ``valid`` ``(B,)`` frames). With ``axis_name``
    the loss normalisation, gradients and BatchNorm statistics are global."""
    model = network(config)
    tx = optimizer(config)
    compute = jnp.bfloat16 if config.bf16 else jnp.float32
    schedule = learning_rate(config)
    total = (lambda x: jax.lax.psum(x, axis_name)) if axis_name else (lambda x: x)

    train_bn = batch_norm_setting(config) == "update"

    def loss_fn(params, batch_stats, mel_in, mel_clean, valid, count, rng):
        cast = lambda t: jax.tree_util.tree_map(lambda x: x.astype(compute), t)
        # Repeated layers stay unrolled under a gradient, as the vocoder's
        # (vf_jax.training.vocoder.step.generator_module): looped, a gradient
        # keeps every iteration's residuals at once.
        with batch_axis(axis_name), backends.force_loops(False):
            restored, updates = model.apply(
                {"params": cast(params), "batch_stats": batch_stats}, mel_in.astype(compute),
                train_bn=train_bn, deterministic=False, valid=None, mutable=["batch_stats"],
                rngs={"dropout": rng})
        loss_sum, _ = mel_loss_sum(restored.astype(jnp.float32), mel_clean, valid, config.loss)
        new_stats = updates.get("batch_stats", batch_stats)
        return loss_sum / count, keep_frozen_statistics(config, new_stats, batch_stats)

    def update(state: TrainState, mel_in, mel_clean, valid, dropout_rng):
        count = total(jnp.sum(valid) * mel_in.shape[-1]).astype(jnp.float32)
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, mel_in, mel_clean, valid, count, dropout_rng)
        loss, grads = total(loss), total(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
                   "learning_rate": schedule(state.step)}
        return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                             opt_state=opt_state), metrics
    return update


def make_step(config: ml_collections.ConfigDict, axis_name: str | None = None):
    """The update ``(state, batch) -> (state, metrics)``: degradations and
    front end (:func:`make_features`), then :func:`make_update`.

    ``axis_name`` (pmap): the batch is this device's share; example keys,
    BatchNorm statistics, the loss normalisation and the gradients are those
    of the global batch, so every way of running gives the same update.
    """
    features = make_features(config)
    update = make_update(config, axis_name)

    def step(state: TrainState, batch):
        rng, degrade_rng, dropout_rng = jax.random.split(state.rng, 3)
        local = batch["speech"].shape[0]
        keys = parallel.example_keys(degrade_rng, local, axis_name)
        if axis_name is not None:
            dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
        mel_in, mel_clean, valid = features(batch, keys)
        state, metrics = update(state, mel_in, mel_clean, valid, dropout_rng)
        return state.replace(rng=rng), metrics
    return step


def make_eval_step(config: ml_collections.ConfigDict, media_examples: int = 2):
    """Validation on one batch: ``(params, batch_stats, batch, key) -> out``.

    Degradations from ``key`` (fixed per validation batch, so every
    validation sees the same inputs), the network in eval mode (stored
    BatchNorm statistics, no dropout). ``out`` holds sums over the batch —
    ``mel_l1_sum`` and ``input_mel_l1_sum`` over ``count`` (valid frames x
    mels; the loss of the restored and of the degraded mel), ``mel_lsd_sum``,
    ``input_mel_lsd_sum``, ``mel_sispnr_sum`` and ``input_mel_sispnr_sum``
    (SiSPNR of the log mel over the valid frames) over ``examples`` — and, for
    the first ``media_examples``, the log10 mels ``degraded_mel``, ``restored_mel``,
    ``clean_mel`` ``(n, T, mels)`` and the waveforms ``degraded``, ``clean``
    ``(n, samples)``.
    """
    model = network(config)

    def eval_step(params, batch_stats, batch, key):
        keys = jax.random.split(key, batch["speech"].shape[0])
        degraded, target, mel_in, mel_clean, valid = degrade_and_analyse(
            batch, keys, config.degradation)
        # Unrolled, as in training: on a TPU the looped ResUNet with its
        # convolutions as products was estimated slower here (v5e: 115 ms
        # with its loops priced once, against 85 ms unrolled in the
        # compiler's fast mode; benchmarks/README.md, "Measured choices").
        with backends.force_loops(False):
            restored = model.apply({"params": params, "batch_stats": batch_stats}, mel_in,
                                   train_bn=False, deterministic=True, valid=None)
        log_in, log_clean = mel_lib.to_log(mel_in), mel_lib.to_log(mel_clean)
        l1, count = mel_loss_sum(restored, mel_clean, valid, config.loss)
        l1_in, _ = mel_loss_sum(log_in, mel_clean, valid, config.loss)
        n = min(media_examples, degraded.shape[0])
        # Zeroed padding adds nothing to SiSPNR's sums: valid frames only.
        sispnr = lambda est: jnp.sum(metrics_lib.sispnr_jax(
            mask_frames(log_clean, valid), mask_frames(est, valid)))
        return {
            "mel_sispnr_sum": sispnr(restored), "input_mel_sispnr_sum": sispnr(log_in),
            "mel_l1_sum": l1, "input_mel_l1_sum": l1_in, "count": count,
            "mel_lsd_sum": jnp.sum(metrics_lib.mel_lsd(log_clean, restored, valid)),
            "input_mel_lsd_sum": jnp.sum(metrics_lib.mel_lsd(log_clean, log_in, valid)),
            "examples": jnp.asarray(degraded.shape[0], jnp.float32),
            "degraded_mel": log_in[:n], "restored_mel": restored[:n],
            "clean_mel": log_clean[:n], "degraded": degraded[:n], "clean": target[:n]}
    return eval_step


# -------------------------------------------------------- data parallel ---

def jit_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    """:func:`make_step` under ``jax.jit`` over ``mesh``
    (:func:`vf_jax.training.parallel.jit_step`)."""
    return parallel.jit_step(make_step(config), mesh)


def pmap_step(config: ml_collections.ConfigDict):
    """:func:`make_step` under ``jax.pmap`` (:func:`vf_jax.training.parallel.pmap_step`)."""
    return parallel.pmap_step(make_step(config, axis_name=parallel.AXIS))


def jit_eval_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                  media_examples: int = 2):
    """:func:`make_eval_step` under ``jax.jit``: variables and key replicated,
    batch sharded over ``data``, outputs replicated."""
    return parallel.jit_eval(make_eval_step(config, media_examples), mesh, replicated_args=2)

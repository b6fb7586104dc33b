"""Training the TFGAN vocoder: state, optimisers and the update step.

One step ``(state, batch) -> (state, metrics)`` on clean speech ``batch["speech"]``
``(B, samples)``, run by the shared loop (:mod:`vf_jax.training.loop`) with
``jax.jit`` over a mesh or ``jax.pmap`` (:mod:`vf_jax.training.parallel`):

1. the mel of the clean crop from the shared front end, normalised as the
   vocoder's input (:func:`vf_jax.models.vocoder.normalise_mel`, with its tail);
2. the weight-normed generator, aligned to the crop as a restoration is
   (:func:`vf_jax.models.vocoder.trim_center`) — run once; its gradient comes back
   through ``jax.vjp`` from the gradient with respect to the waveform;
3. from ``config.discriminator_start`` on: a discriminator update (LSGAN) on
   the real and the generated crops, then the generator's adversarial and
   feature-matching losses through the updated discriminators;
4. the generator update on ``λ_sc SC + λ_mag MAG + λ_mel MEL (+ λ_adv ADV +
   λ_fm FM)`` (:mod:`vf_jax.training.vocoder.losses`) and the EMA of its weights.

Before the discriminators start they are neither run nor updated: the two
phases are two programs (``make_step(..., adversarial=False/True)``), and the
loop picks one per step on the host (:func:`phase`). A ``lax.cond`` on the
step would give one program, but XLA's CPU backend runs convolutions inside a
conditional far slower than outside (``benchmarks/README.md``, "Measured choices"), and both
phases would carry the other's buffers.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vf_jax import backends, compilation
from vf_jax.audio import mel as mel_lib
from vf_jax.audio import stft as stft_lib
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError
from vf_jax.evaluation import metrics as metrics_lib
from vf_jax.models import discriminators as disc_lib
from vf_jax.models.vocoder import TFGANGenerator, normalise_mel, trim_center
from vf_jax.training import optim, parallel
from vf_jax.training.vocoder import losses

FRONT_END = mel_lib.FRONT_ENDS[SAMPLE_RATE]


@flax.struct.dataclass
class VocoderState:
    step: jax.Array
    generator: Any          # weight-normed parameters (g, v)
    generator_ema: Any      # their exponential moving average (what is exported)
    discriminators: Any
    generator_opt: Any
    discriminator_opt: Any


def generator_module(config: ml_collections.ConfigDict, weight_norm: bool = True,
                     remat: bool = False):
    """The generator being trained. Its residual stacks stay unrolled on every
    backend: looped, the generator-only step for a v5e chip compiled 7 %
    faster (226 s against 242 s) but needed 14.3 GB of HBM instead of 7.6
    (``benchmarks/README.md``, "Repeated layers")."""
    g = config.generator
    return TFGANGenerator(weight_norm=weight_norm, channels=g.channels,
                          cond_channels=g.cond_channels, resstack_depth=g.resstack_depth,
                          remat=remat, looped=False)


REMAT = ("auto", "none", "discriminators", "all")


def remat_parts(config: ml_collections.ConfigDict) -> tuple[bool, bool]:
    """``(generator, discriminators)``: whether the step being traced
    recomputes their activations in its backward pass rather than storing
    them. ``config.remat``: "none"; "discriminators" (each one's hidden
    layers); "all" (those and the generator's residual layers); "auto":
    "discriminators" on a TPU, whose v5e chip holds 16 GB (the published GAN
    step at 24 per chip needs more without it: ``benchmarks/accelerators.py``),
    else "none"."""
    remat = config.remat
    if remat not in REMAT:
        raise UserError(f"config.remat must be one of {', '.join(REMAT)}, not {remat!r}")
    if remat == "auto":
        remat = "discriminators" if backends.family() == "tpu" else "none"
    return remat == "all", remat != "none"


def schedule(config: ml_collections.ConfigDict, base: float):
    """``base * decay ** (step // every)``."""
    decay, every = config.lr_decay, max(config.lr_decay_every, 1)
    return lambda step: base * decay ** jnp.floor(jnp.asarray(step, jnp.float32) / every)


def optimizers(config: ml_collections.ConfigDict):
    """``(generator, discriminator)`` Adam optimisers."""
    return (optim.adam(config, schedule(config, config.generator_learning_rate)),
            optim.adam(config, schedule(config, config.discriminator_learning_rate)))


def init_state(config: ml_collections.ConfigDict, rng, generator_params=None) -> VocoderState:
    """Fresh discriminators and optimisers; the generator fresh or from
    ``generator_params`` (weight-normed, e.g. unfolded published weights).

    One jitted program: run eagerly, every initialiser's random draw is a
    program of its own to compile (tens of seconds on a CPU); jitted, it is
    one, which the persistent compilation cache keeps for the next run
    (:func:`vf_jax.compilation.jit_init`).
    """
    def init(rng, generator_params):
        g_rng, d_rng = jax.random.split(rng)
        if generator_params is None:
            generator_params = generator_module(config).init(
                g_rng, jnp.zeros((1, 8, FRONT_END.n_mels)))["params"]
        disc_params = disc_lib.Discriminators(config.discriminators).init(
            d_rng, jnp.zeros((1, 8192)))
        g_tx, d_tx = optimizers(config)
        return VocoderState(step=jnp.zeros((), jnp.int32), generator=generator_params,
                            generator_ema=jax.tree_util.tree_map(jnp.copy, generator_params),
                            discriminators=disc_params,
                            generator_opt=g_tx.init(generator_params),
                            discriminator_opt=d_tx.init(disc_params))
    return compilation.jit_init(init)(rng, generator_params)


def vocoder_input(speech):
    """Clean crops ``(B, L)`` -> normalised features ``(B, T + tail, 128)`` and ``T``."""
    mel, _ = mel_lib.mel_spectrogram(speech, FRONT_END)
    feats, _ = normalise_mel(mel)
    return feats, mel.shape[1]


def make_generate(config: ml_collections.ConfigDict, weight_norm: bool = True,
                  remat: bool = False):
    """``(params, speech (B, L)) -> generated (B, L)`` float32 from the
    crops' mels, aligned as a restoration."""
    gen = generator_module(config, weight_norm, remat)
    compute = jnp.bfloat16 if config.bf16 else jnp.float32

    def generate(params, speech):
        feats, frames = vocoder_input(speech)
        params = jax.tree_util.tree_map(lambda x: x.astype(compute), params)
        wav = gen.apply({"params": params}, feats.astype(compute))
        return trim_center(wav, speech.shape[-1], frames).astype(jnp.float32)
    return generate


def phase(config: ml_collections.ConfigDict, step: int) -> bool:
    """Whether update ``step`` (0-based, on the host) is adversarial: the
    discriminators train from ``config.discriminator_start`` on."""
    return step >= config.discriminator_start


def compiles_fast(adversarial: bool) -> bool:
    """Whether an update takes the TPU compiler's fast mode
    (:func:`vf_jax.compilation.options_for`). The generator-only step does
    (for a v5e chip: 51 s to compile against 180, estimated 284 ms against
    271); the GAN step does not: 170 s against 735, but estimated 1,213 ms
    against 971, and a vocoder trains for hundreds of thousands of such steps
    (``benchmarks/README.md``, "Measured choices";
    ``VF_JAX_TPU_COMPILE=fast`` takes it anyway, for short runs)."""
    return not adversarial


def make_step(config: ml_collections.ConfigDict, axis_name: str | None = None,
              adversarial: bool = True):
    """The update ``(state, batch) -> (state, metrics)`` (module docstring):
    with ``adversarial`` the GAN step, without it the generator-only one
    (discriminators and their optimiser passed through; their metrics 0).
    With ``axis_name`` (pmap) the batch is this device's share and losses and
    gradients are averaged over the axis."""
    g_tx, d_tx = optimizers(config)
    compute = jnp.bfloat16 if config.bf16 else jnp.float32
    mean = (lambda x: jax.lax.pmean(x, axis_name)) if axis_name else (lambda x: x)
    resolutions = config.stft_resolutions
    lam = config.loss_weights

    def step(state: VocoderState, batch):
        # The networks are built while tracing: remat depends on the backend.
        remat_generator, remat_discriminators = remat_parts(config)
        generate = make_generate(config, remat=remat_generator)
        disc = disc_lib.Discriminators(config.discriminators, remat=remat_discriminators)

        def run_disc(params, wav):
            params = jax.tree_util.tree_map(lambda x: x.astype(compute), params)
            outs = disc.apply(params, wav.astype(compute))
            return jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), outs)

        real = batch["speech"]
        fake, pullback = jax.vjp(lambda p: generate(p, real), state.generator)
        zero = jnp.zeros((), jnp.float32)

        # -- discriminators (LSGAN), on the generated crop held fixed ------
        d_params, d_opt, d_loss, d_grad_norm = (state.discriminators, state.discriminator_opt,
                                                zero, zero)
        if adversarial:
            def disc_loss(params):
                return losses.discriminator_loss(run_disc(params, real),
                                                 run_disc(params, jax.lax.stop_gradient(fake)))
            d_loss, d_grads = jax.value_and_grad(disc_loss)(state.discriminators)
            d_loss, d_grads = mean(d_loss), mean(d_grads)
            d_updates, d_opt = d_tx.update(d_grads, d_opt, d_params)
            d_params = optax.apply_updates(d_params, d_updates)
            d_grad_norm = optax.global_norm(d_grads)

        # -- generator, through the updated discriminators -----------------
        def gen_loss(wav):
            sc, mag = losses.multi_resolution_stft_loss(real, wav, resolutions, axis_name)
            mel = losses.mel_l1(real, wav)
            adv = fm = zero
            if adversarial:
                fake_out = run_disc(d_params, wav)
                real_out = jax.lax.stop_gradient(run_disc(d_params, real))
                adv = losses.adversarial_loss(fake_out)
                fm = losses.feature_matching_loss(real_out, fake_out)
            total = (lam.sc * sc + lam.mag * mag + lam.mel * mel
                     + lam.adv * adv + lam.fm * fm)
            return total, {"spectral_convergence": sc, "log_magnitude": mag, "mel_l1": mel,
                           "adversarial": adv, "feature_matching": fm}
        (g_loss, parts), d_fake = jax.value_and_grad(gen_loss, has_aux=True)(fake)
        (g_grads,) = pullback(d_fake)
        g_loss, parts, g_grads = mean(g_loss), mean(parts), mean(g_grads)
        g_updates, g_opt = g_tx.update(g_grads, state.generator_opt, state.generator)
        g_params = optax.apply_updates(state.generator, g_updates)
        decay = config.ema_decay
        ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p,
                                     state.generator_ema, g_params)
        metrics = {"loss": g_loss, "grad_norm": optax.global_norm(g_grads),
                   "discriminator_loss": d_loss,
                   "discriminator_grad_norm": d_grad_norm,
                   "learning_rate": schedule(config, config.generator_learning_rate)(state.step),
                   "discriminator_learning_rate":
                       schedule(config, config.discriminator_learning_rate)(state.step),
                   **parts}
        return VocoderState(step=state.step + 1, generator=g_params, generator_ema=ema,
                            discriminators=d_params, generator_opt=g_opt,
                            discriminator_opt=d_opt), metrics
    return step


def make_eval_step(config: ml_collections.ConfigDict, media_examples: int = 2):
    """Validation of the EMA generator on one batch of clean crops:
    ``(generator_params, batch) -> out`` with sums over the batch
    (``mel_l1_sum``, ``lsd_sum`` — the waveform LSD of :mod:`vf_jax.evaluation.metrics`,
    STFT 2048/441 — and the batch's spectral convergence and log magnitude
    times its size, over ``examples``) and, for the first ``media_examples``, the waveforms
    ``real``, ``generated`` ``(n, L)`` and their log10 mels ``(n, T, 128)``."""
    generate = make_generate(config)
    n_fft, hop, _ = metrics_lib.SPECTRAL_SETTINGS[SAMPLE_RATE]

    def eval_step(params, batch):
        real = batch["speech"]
        fake = generate(params, real)
        sc, mag = losses.multi_resolution_stft_loss(real, fake, config.stft_resolutions)
        mel_real, mel_fake = losses.log_mel(real), losses.log_mel(fake)
        mel_l1 = jnp.mean(jnp.abs(mel_real - mel_fake), axis=(1, 2))
        spec = lambda x: stft_lib.magnitude(stft_lib.stft(x, n_fft, hop))
        lsd = metrics_lib.lsd_spectra_jax(spec(real), spec(fake))
        n = min(media_examples, real.shape[0])
        examples = jnp.asarray(real.shape[0], jnp.float32)
        return {"mel_l1_sum": jnp.sum(mel_l1), "spectral_convergence_sum": sc * examples,
                "log_magnitude_sum": mag * examples, "lsd_sum": jnp.sum(lsd),
                "examples": examples,
                "real": real[:n], "generated": fake[:n],
                "real_mel": mel_real[:n], "generated_mel": mel_fake[:n]}
    return eval_step


def jit_eval_step(config, mesh, media_examples: int = 2):
    """:func:`make_eval_step` under ``jax.jit``: parameters replicated, batch
    sharded over ``data``."""
    return parallel.jit_eval(make_eval_step(config, media_examples), mesh,
                             replicated_args=1, sharded_args=1, trailing_replicated=0)

"""Every program users run, as a function and the shapes of its arguments.

For compiling ahead of time (:mod:`vf_jax.aot.compiler`, the tests) and for
``benchmarks/accelerators.py``: the analysis training and validation steps
(VF-UNet, VF-BiGRU, VF-DNN), the vocoder's generator-only and GAN steps,
restoration (analysis network and vocoder, modes 0-2, one window or a batch of
windows) and the degradations alone. Each :class:`Program` is built from the
very functions the training loop or the restorer jits (the training steps,
:mod:`vf_jax.restoration.networks`), its batch shapes from the loader
(:func:`vf_jax.data.loader.config_batch_shapes`) and its settings from the
training configs (``configs/``), so it cannot drift from what runs
(``tests/aot/test_programs.py`` runs some on the CPU against the running code).
:meth:`Program.arguments` gives ``jax.ShapeDtypeStruct``s placed on a mesh
(state replicated, batch split over ``data``), ``batch_per_chip`` examples on
each chip.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vf_jax import config_files
from vf_jax.aot import compiler
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.data import loader
from vf_jax.models import registry as models


@dataclasses.dataclass
class Program:
    """``fn(*arguments)`` for ``batch_per_chip`` examples per chip.

    ``audio_seconds``: seconds of audio one example stands for (the crop, or
    the restored window), so throughput can be given in audio seconds too.
    ``state``: the pytree of the arguments that are replicated (the first
    ``replicated`` arguments); the rest is the batch, split over chips.
    ``fast_compile``: the program's choice of the TPU compiler's fast mode, as
    its running code jits it (:func:`vf_jax.compilation.options_for`).
    """
    name: str
    fn: Callable
    replicated: tuple          # pytrees of ShapeDtypeStruct / arrays (per program, unsharded)
    batch: Callable[[int], tuple]   # global batch size -> batch arguments
    batch_per_chip: int
    audio_seconds: float
    donate_argnums: tuple = ()
    trailing: tuple = ()       # replicated arguments after the batch (keys)
    fast_compile: bool = True

    def arguments(self, mesh: jax.sharding.Mesh) -> tuple:
        size = self.batch_per_chip * mesh.devices.size
        return (tuple(compiler.shape_of(x, mesh) for x in self.replicated)
                + tuple(compiler.shape_of(x, mesh, sharded=True) for x in self.batch(size))
                + tuple(compiler.shape_of(x, mesh) for x in self.trailing))

    def compile(self, mesh: jax.sharding.Mesh) -> compiler.Report:
        return compiler.compile_program(self.fn, self.arguments(mesh),
                                        donate_argnums=self.donate_argnums,
                                        fast_compile=self.fast_compile)


def struct(shape, dtype=np.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


def key_struct() -> jax.ShapeDtypeStruct:
    return jax.eval_shape(lambda: jax.random.PRNGKey(0))


def structs(shapes: dict) -> dict:
    """``{key: (shape, dtype)}`` (:func:`vf_jax.data.loader.batch_shapes`) as structs."""
    return {k: struct(shape, dtype) for k, (shape, dtype) in shapes.items()}


# ----------------------------------------------------------- analysis ---

def analysis_config(model: str, crop_seconds: float = 3.0, bf16: bool = False):
    config = config_files.get_config("resunet", model)
    config.crop_seconds = crop_seconds
    config.bf16 = bf16
    return config


def analysis_train(model: str = "unet", batch_per_chip: int = 24, crop_seconds: float = 3.0,
                   bf16: bool = False, config=None) -> Program:
    """The analysis training step (degradations, front end, network, AMSGrad)."""
    from vf_jax.training.analysis import step as train_step
    config = config or analysis_config(model, crop_seconds, bf16)
    state = jax.eval_shape(lambda: train_step.init_state(config, jax.random.PRNGKey(0)))
    paired = loader.paired_share(config, need_data=False) is not None
    name = ("fine-tune " if paired else "train ") + config.model
    return Program(name + (" bf16" if config.bf16 else ""), train_step.make_step(config),
                   (state,), lambda n: (structs(loader.config_batch_shapes(config, n)),),
                   batch_per_chip, config.crop_seconds, donate_argnums=(0,))


def analysis_finetune(model: str = "released", batch_per_chip: int = 8,
                      crop_seconds: float = 3.0, bf16: bool = False,
                      freeze: str = "", paired_fraction: float | None = None) -> Program:
    """The fine-tuning step of ``configs/finetune.py``: pairs, the GSR
    simulation for the share ``1 - paired_fraction`` (the config's unless
    given; at 1 there is none), frozen BatchNorm statistics, and ``freeze``'s
    parts without updates."""
    config = config_files.get_config("finetune")
    config.model, config.crop_seconds = model, crop_seconds
    config.bf16, config.freeze = bf16, freeze
    if paired_fraction is not None:
        config.paired_fraction = paired_fraction
    return analysis_train(model, batch_per_chip, crop_seconds, bf16, config=config)


def analysis_eval(model: str = "unet", batch_per_chip: int = 24,
                  crop_seconds: float = 3.0, pairs: bool = False) -> Program:
    """The analysis validation step (fixed degradations, eval-mode network,
    metrics); ``pairs``: on held-out pairs, as fine-tuning validates (no degradations)."""
    from vf_jax.training.analysis import step as train_step
    config = analysis_config(model, crop_seconds)
    if pairs:      # validation on pairs: their own degraded sides only
        config.dataset, config.paired_fraction = "paired", 1.0
    variables = models.analysis_template(model)
    return Program(f"validate {model}" + (" on pairs" if pairs else ""),
                   train_step.make_eval_step(config),
                   (variables["params"], variables.get("batch_stats", {})),
                   lambda n: (structs(loader.config_batch_shapes(config, n)),), batch_per_chip,
                   crop_seconds, trailing=(key_struct(),))


# ------------------------------------------------------------ vocoder ---

def vocoder_config(crop_seconds: float = 0.5, bf16: bool = False, generator=None,
                   discriminators=None):
    config = config_files.get_config("tfgan")
    config.crop_seconds = crop_seconds
    config.bf16 = bf16
    if generator:
        config.generator.update(generator)
    if discriminators:
        config.discriminators.update(discriminators)
    return config


def vocoder_train(adversarial: bool = True, batch_per_chip: int = 24,
                  crop_seconds: float = 0.5, bf16: bool = False, config=None) -> Program:
    """The vocoder's update: generator only, or the GAN step with the
    discriminators' update."""
    from vf_jax.training.vocoder import step as vts
    config = config or vocoder_config(crop_seconds, bf16)
    state = jax.eval_shape(lambda: vts.init_state(config, jax.random.PRNGKey(0)))
    name = "vocoder GAN" if adversarial else "vocoder generator-only"
    return Program(name + (" bf16" if bf16 else ""),
                   vts.make_step(config, adversarial=adversarial), (state,),
                   lambda n: (structs(loader.config_batch_shapes(config, n, speech_only=True)),),
                   batch_per_chip, config.crop_seconds, donate_argnums=(0,),
                   fast_compile=vts.compiles_fast(adversarial))


# -------------------------------------------------------- restoration ---

def restore_variables(kind: str, vocoder_size: tuple, width: float = 1.0) -> dict:
    """The shapes of a weights folder's variables (analysis ``kind`` at
    ``width``, a generator of ``vocoder_size``)."""
    from vf_jax.models.vocoder import TFGANGenerator
    vocoder = jax.eval_shape(lambda: TFGANGenerator(**dict(vocoder_size)).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 8, 128))))
    return {"analysis": models.analysis_template(kind, width), "vocoder": vocoder}


def restore(mode: int = 0, windows_per_chip: int = 1, seconds: float = 30.0,
            kind: str = "released", vocoder_size: tuple = (), bf16: bool = False,
            width: float = 1.0) -> Program:
    """Restoring windows of ``seconds`` in ``mode``: what
    :class:`vf_jax.restoration.restorer.Restorer` runs per window
    (:func:`vf_jax.restoration.networks.restore_window`), here as one program
    on a batch of windows padded to their frame bucket (unpadded in mode 2)."""
    from vf_jax.restoration import buckets, networks
    samples = int(round(seconds * SAMPLE_RATE))
    _, bucket = buckets.row_shape(samples)
    precision = "bf16" if bf16 else "float32"

    def program(variables, wav, rng):
        return networks.restore_window(variables, wav, rng, mode=mode, samples=samples,
                                       kind=kind, size=vocoder_size, precision=precision,
                                       width=width)

    rows = samples if mode == 2 else bucket * buckets.HOP
    name = f"restore mode {mode} x{windows_per_chip}" + (" bf16" if bf16 else "")
    return Program(name, program, (restore_variables(kind, vocoder_size, width),),
                   lambda n: (struct((n, rows)),), windows_per_chip, seconds,
                   trailing=(key_struct(),))


def restore_rows(rows_per_chip: int = 4, seconds: float = 10.0, kind: str = "released",
                 vocoder_size: tuple = (), bf16: bool = False, width: float = 1.0,
                 frames: int | None = None, mode: int = 0) -> Program:
    """What restoring a folder runs (:meth:`vf_jax.restoration.restorer.Restorer.restore_many`,
    :func:`vf_jax.restoration.networks.restore_rows`): rows of many files'
    windows in one frame bucket, each with its own length, in mode 0 or 1.
    The bucket: ``frames`` (a rung of a ladder, :mod:`vf_jax.restoration.buckets`),
    else the fine ladder's bucket of a ``seconds`` window."""
    from vf_jax.restoration import buckets, networks
    bucket = frames or buckets.row_shape(int(round(seconds * SAMPLE_RATE)))[1]
    precision = "bf16" if bf16 else "float32"

    def program(variables, wav, lengths):
        return networks.restore_rows(variables, wav, lengths, n_frames=bucket, kind=kind,
                                     size=vocoder_size, precision=precision, width=width,
                                     high_frequency=mode == 1)

    name = (f"restore rows x{rows_per_chip} of {bucket} frames"
            + (f" mode {mode}" if mode else "") + (" bf16" if bf16 else ""))
    return Program(name, program, (restore_variables(kind, vocoder_size, width),),
                   lambda n: (struct((n, bucket * buckets.HOP)), struct((n,), np.int32)),
                   rows_per_chip, bucket * buckets.HOP / SAMPLE_RATE)


# -------------------------------------------------------- degradations ---

def degrade(batch_per_chip: int = 24, crop_seconds: float = 3.0, config=None) -> Program:
    """The GSR degradations of a raw batch (:func:`vf_jax.audio.degradations.degrade_batch`)."""
    from vf_jax.audio import degradations
    config = config or degradations.gsr_config()

    def program(keys, batch):
        return degradations.degrade_batch(keys, batch["speech"], batch["noise"],
                                          batch["rir"], config)
    return Program("degradations", program, (),
                   lambda n: (jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), n)),
                              structs(loader.batch_shapes(n, crop_seconds))),
                   batch_per_chip, crop_seconds)


def folder_programs(bf16: bool = False, mode: int = 0) -> list[Program]:
    """What restoring a folder compiles on a TPU: rows (as many per chip as
    :data:`vf_jax.restoration.batched.ROWS_PER_DEVICE` gives a TPU) of each
    rung of the TPU's ladder (:mod:`vf_jax.restoration.buckets`)."""
    from vf_jax.restoration import batched, buckets
    ladder = buckets.LADDERS[buckets.PLATFORM_LADDERS["tpu"]]
    return [restore_rows(batched.ROWS_PER_DEVICE["tpu"], frames=b, bf16=bf16, mode=mode)
            for b in ladder]


def paper_programs(bf16: bool = False) -> list[Program]:
    """Every program at the paper's sizes (``benchmarks/accelerators.py``)."""
    out = [analysis_train(m, bf16=bf16) for m in ("unet", "bigru", "dnn")]
    out += [analysis_finetune("released", bf16=bf16)]
    out += [analysis_eval(m) for m in ("unet", "bigru", "dnn")] if not bf16 else []
    out += [vocoder_train(False, bf16=bf16), vocoder_train(True, bf16=bf16)]
    out += [restore(mode, 1, bf16=bf16) for mode in (0, 1, 2)]
    # A batch of windows: 4 x 10 s (8 x 30 s need some 75 GB; one 30 s window 9.3).
    out += [restore(0, 4, 10.0, bf16=bf16)]
    # What a folder compiles on a TPU: rows of the coarse ladder's rungs.
    out += folder_programs(bf16)
    out += [degrade()] if not bf16 else []
    return out

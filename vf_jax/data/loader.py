"""The training input: grain over the TFDS data sources.

Each record is one example's raw material, float32 at 44.1 kHz; the
degradations run on device, inside the training step
(:mod:`vf_jax.audio.degradations`):

- ``speech`` ``(crop,)``: a random crop of a clean utterance (3 s by
  default); shorter utterances are zero-padded, ``speech_length`` says how
  many samples are real;
- ``noise`` ``(crop,)``: a random stretch of a random noise recording (looped
  when short), or synthetic pink noise when no noise dataset is given;
- ``rir`` ``(rir_samples,)``: a random room impulse response, truncated or
  zero-padded, or a synthetic one when no RIR dataset is given.

A user's pairs (``gsr_paired``, ``dataset = "paired"``) add ``degraded``
``(crop,)``, cropped at the same offsets as ``speech`` (their clean side), and
``paired``: 1 where the example is the real pair, 0 where the step simulates
the degradation of the clean side instead (a share ``1 - paired_fraction``).

Deterministic for a seed: the index sampler shuffles and repeats the speech
records, and every random choice of a record comes from grain's per-record
generator. Sharded per host (``jax.process_index()`` of
``jax.process_count()``). The iterator's state (``get_state()`` /
``set_state()``) goes into the training checkpoint, so a resumed run sees
exactly the examples it would have seen.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio import synthetic
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.data import builders
from vf_jax.data.clip import load_clip
from vf_jax.errors import UserError


@dataclasses.dataclass
class Sources:
    """Random-access sources: speech (required), noise and RIRs (optional)."""
    speech: object
    noise: object | None = None
    rir: object | None = None

    @classmethod
    def from_data_dir(cls, data_dir: str, split: str = "train", noise: bool = True,
                      rir: bool = True, speech: str = "speech") -> "Sources":
        """The datasets built by ``python -m vf_jax.data build`` in ``data_dir``;
        noise and RIRs only when asked for and built. ``speech="paired"``:
        the records are the user's pairs (``gsr_paired``)."""
        def optional(kind, wanted):
            if not wanted:
                return None
            builder = builders.BUILDERS[kind](data_dir=data_dir)
            return builder.as_data_source(split="train") if builder.is_prepared() else None
        return cls(builders.data_source(speech, data_dir, split),
                   optional("noise", noise), optional("rir", rir))


class CropAndPair(grain.transforms.RandomMap):
    """Speech record -> ``{speech, speech_length, noise, rir}`` (see module)."""

    def __init__(self, sources: Sources, crop_samples: int, rir_samples: int,
                 speech_only: bool = False):
        self.noise, self.rir = sources.noise, sources.rir
        self.crop, self.rir_samples = crop_samples, rir_samples
        self.speech_only = speech_only

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        (speech,), length = self.crop_together([audio_io.from_pcm16(record["audio"])], rng)
        if self.speech_only:
            return {"speech": speech, "speech_length": np.int32(length)}
        return {"speech": speech, "speech_length": np.int32(length),
                **self.noise_and_rir(rng)}

    def crop_together(self, signals: list, rng: np.random.Generator):
        """Signals of one length cropped at one random start (when longer
        than the crop) and zero-padded to it: ``(crops, real samples)``."""
        start, length = 0, len(signals[0])
        if length > self.crop:
            start, length = int(rng.integers(0, length - self.crop + 1)), self.crop
        return [np.pad(x[start:start + length], (0, self.crop - length)) for x in signals], length

    def noise_and_rir(self, rng: np.random.Generator) -> dict:
        """A noise stretch ``(crop,)`` and an RIR ``(rir_samples,)``, drawn."""
        if self.noise is not None:
            noise = audio_io.from_pcm16(self.noise[int(rng.integers(len(self.noise)))]["audio"])
            if len(noise) < self.crop:
                noise = np.tile(noise, -(-self.crop // max(len(noise), 1)))
            start = int(rng.integers(0, len(noise) - self.crop + 1))
            noise = noise[start:start + self.crop]
        else:
            noise = synthetic.pink_noise(self.crop, rng)
        if self.rir is not None:
            rir = np.asarray(self.rir[int(rng.integers(len(self.rir)))]["rir"], np.float32)
        else:
            rir = synthetic.room_impulse_response(rng)
        rir = np.pad(rir[:self.rir_samples], (0, max(0, self.rir_samples - len(rir))))
        return {"noise": noise.astype(np.float32), "rir": rir.astype(np.float32)}


class CropPair(CropAndPair):
    """Pair record (``gsr_paired``) -> ``{speech, degraded, speech_length,
    paired}``: the clean and degraded sides cropped at the same offsets.
    With ``paired_fraction < 1`` also ``noise`` and ``rir``, and ``paired``
    is 1 with that probability, else 0: the step then degrades the clean side
    by simulation instead (:func:`vf_jax.training.analysis.step.degrade_and_analyse`)."""

    def __init__(self, sources: "Sources", crop_samples: int, rir_samples: int,
                 paired_fraction: float = 1.0):
        super().__init__(sources, crop_samples, rir_samples)
        if not 0.0 <= paired_fraction <= 1.0:
            raise UserError(f"paired_fraction must be within [0, 1], got {paired_fraction}")
        self.paired_fraction = paired_fraction

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        (clean, degraded), length = self.crop_together(
            [audio_io.from_pcm16(record["clean"]), audio_io.from_pcm16(record["degraded"])], rng)
        out = {"speech": clean, "degraded": degraded, "speech_length": np.int32(length)}
        if self.paired_fraction >= 1.0:
            return dict(out, paired=np.int32(1))
        paired = np.int32(rng.uniform() < self.paired_fraction)
        return dict(out, paired=paired, **self.noise_and_rir(rng))


def make_loader(sources: Sources, *, batch_size: int, seed: int, crop_seconds: float = 3.0,
                rir_seconds: float = 1.0, num_epochs: int | None = None,
                worker_count: int = 0, shard_index: int | None = None,
                shard_count: int | None = None, speech_only: bool = False,
                paired_fraction: float | None = None) -> grain.DataLoader:
    """A grain ``DataLoader`` of batches ``{speech (B, crop), speech_length
    (B,), noise (B, crop), rir (B, rir_samples)}`` for this host (only
    ``speech`` and ``speech_length`` with ``speech_only``: the vocoder's input).
    With ``paired_fraction`` the records are pairs, the batches
    :class:`CropPair`'s.

    ``batch_size`` is per host. Shards default to ``jax.process_index()`` of
    ``jax.process_count()``. ``num_epochs=None`` repeats forever.
    """
    if worker_count > 0:
        # grain's worker processes read absl flags, which only an absl app parses.
        from absl import flags
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
    if shard_index is None or shard_count is None:
        import jax
        shard_index, shard_count = jax.process_index(), jax.process_count()
    shard = grain.sharding.ShardOptions(shard_index=shard_index, shard_count=shard_count,
                                        drop_remainder=True)
    sampler = grain.samplers.IndexSampler(num_records=len(sources.speech), shard_options=shard,
                                          shuffle=True, num_epochs=num_epochs, seed=seed)
    crop_samples = int(round(crop_seconds * SAMPLE_RATE))
    rir_samples = int(round(rir_seconds * SAMPLE_RATE))
    crop = (CropAndPair(sources, crop_samples, rir_samples, speech_only)
            if paired_fraction is None else
            CropPair(sources, crop_samples, rir_samples, paired_fraction))
    return grain.DataLoader(data_source=sources.speech, sampler=sampler,
                            operations=[crop, grain.transforms.Batch(batch_size,
                                                                     drop_remainder=True)],
                            worker_count=worker_count)


def batch_shapes(batch_size: int, crop_seconds: float = 3.0, rir_seconds: float = 1.0,
                 speech_only: bool = False,
                 paired_fraction: float | None = None) -> dict[str, tuple[tuple, np.dtype]]:
    """``{key: (shape, dtype)}`` of the batches :func:`make_loader` gives with
    these arguments (``tests/aot/test_programs.py`` checks them against real
    batches): what a training step is compiled for ahead of time."""
    crop = int(round(crop_seconds * SAMPLE_RATE))
    f32, i32 = np.dtype(np.float32), np.dtype(np.int32)
    shapes = {"speech": ((batch_size, crop), f32), "speech_length": ((batch_size,), i32)}
    if paired_fraction is not None:
        shapes.update(degraded=((batch_size, crop), f32), paired=((batch_size,), i32))
    simulated = (not speech_only if paired_fraction is None else paired_fraction < 1.0)
    if simulated:
        shapes.update(noise=((batch_size, crop), f32),
                      rir=((batch_size, int(round(rir_seconds * SAMPLE_RATE))), f32))
    return shapes


def config_batch_shapes(config, batch_size: int, speech_only: bool = False) -> dict:
    """:func:`batch_shapes` of a training ``config``'s batches (as
    :func:`training_loader` makes them), without reading any data."""
    fraction = paired_share(config, need_data=False)
    return batch_shapes(batch_size, config.crop_seconds, config.get("rir_seconds", 1.0),
                        speech_only, fraction)


# ------------------------------------------------- the training loops' ---

def shipped_clip_source(copies: int = 8) -> list[dict]:
    """The demo's clip as a speech source (int16 records): ``copies`` records
    of it, so that up to that many hosts each get a shard."""
    return [{"audio": audio_io.to_pcm16(load_clip())}] * copies


def training_loader(config, host_batch: int, speech_only: bool = False) -> grain.DataLoader:
    """This host's training batches for a training ``config`` (``data_dir``,
    ``seed``, ``crop_seconds``, ``rir_seconds``, ``worker_count``): the built
    datasets, or the shipped clip when ``data_dir`` is empty."""
    fraction = paired_share(config)
    if fraction is not None:
        sources = Sources.from_data_dir(config.data_dir, noise=fraction < 1,
                                        rir=fraction < 1, speech="paired")
    elif config.data_dir:
        sources = Sources.from_data_dir(config.data_dir, noise=not speech_only,
                                        rir=not speech_only)
    else:
        sources = Sources(speech=shipped_clip_source())
    return make_loader(sources, batch_size=host_batch, seed=config.seed,
                       crop_seconds=config.crop_seconds,
                       rir_seconds=config.get("rir_seconds", 1.0),
                       worker_count=config.worker_count, speech_only=speech_only,
                       paired_fraction=fraction)


def paired_share(config, need_data: bool = True) -> float | None:
    """``config.paired_fraction`` when the config trains on pairs
    (``dataset == "paired"``), else None (the vocoder's configs have no
    ``dataset``: speech). ``need_data``: pairs need ``config.data_dir``."""
    dataset = config.get("dataset", "speech")
    if dataset == "speech":
        return None
    if dataset != "paired":
        raise UserError(f"dataset must be speech or paired, got {dataset!r}")
    if need_data and not config.data_dir:
        raise UserError("dataset paired needs --config.data_dir, a folder where "
                        "python -m vf_jax.data build paired --degraded D --clean C wrote")
    return float(config.paired_fraction)


def validation_sources(data_dir: str, speech_only: bool = False,
                       paired: bool = False) -> Sources:
    """The validation split of ``data_dir``'s speech (other speakers than
    training), else — no data folder or no validation split — the training
    speech, said so. ``paired``: of its pairs (held-out speakers or files)."""
    import sys
    if not data_dir:
        return Sources(speech=shipped_clip_source())
    kind = "paired" if paired else "speech"
    extras = not speech_only and not paired
    try:
        sources = Sources.from_data_dir(data_dir, split="validation", noise=extras,
                                        rir=extras, speech=kind)
        if len(sources.speech) > 0:
            return sources
    except UserError:   # a dataset built without a validation split
        pass
    what = "pairs" if paired else "speech"
    print(f"warning: {data_dir} has no validation {what}; validating on training {what}",
          file=sys.stderr)
    return Sources.from_data_dir(data_dir, noise=extras, rir=extras, speech=kind)


def validation_batches(config, host_batch: int, speech_only: bool = False) -> list[dict]:
    """A fixed validation set: ``ceil(config.eval_examples / global batch)``
    batches of this host's crops (seed ``config.seed + 1``), read once and
    kept on the host. Pairs (``dataset == "paired"``): the held-out pairs,
    their own degraded sides only."""
    import jax
    global_batch = host_batch * jax.process_count()
    count = max(1, -(-config.eval_examples // global_batch))
    paired = paired_share(config) is not None
    data = make_loader(validation_sources(config.data_dir, speech_only, paired),
                       batch_size=host_batch, seed=config.seed + 1,
                       crop_seconds=config.crop_seconds,
                       rir_seconds=config.get("rir_seconds", 1.0), worker_count=0,
                       speech_only=speech_only, paired_fraction=1.0 if paired else None)
    it = iter(data)
    return [next(it) for _ in range(count)]

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
                      rir: bool = True) -> "Sources":
        """The datasets built by ``python -m vf_jax.data build`` in ``data_dir``;
        noise and RIRs only when asked for and built."""
        def optional(kind, wanted):
            if not wanted:
                return None
            builder = builders.BUILDERS[kind](data_dir=data_dir)
            return builder.as_data_source(split="train") if builder.is_prepared() else None
        return cls(builders.data_source("speech", data_dir, split),
                   optional("noise", noise), optional("rir", rir))


class CropAndPair(grain.transforms.RandomMap):
    """Speech record -> ``{speech, speech_length, noise, rir}`` (see module)."""

    def __init__(self, sources: Sources, crop_samples: int, rir_samples: int,
                 speech_only: bool = False):
        self.noise, self.rir = sources.noise, sources.rir
        self.crop, self.rir_samples = crop_samples, rir_samples
        self.speech_only = speech_only

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        speech = audio_io.from_pcm16(record["audio"])
        if len(speech) > self.crop:
            start = int(rng.integers(0, len(speech) - self.crop + 1))
            speech = speech[start:start + self.crop]
        length = len(speech)
        speech = np.pad(speech, (0, self.crop - length))
        if self.speech_only:
            return {"speech": speech, "speech_length": np.int32(length)}
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
        return {"speech": speech, "speech_length": np.int32(length),
                "noise": noise.astype(np.float32), "rir": rir.astype(np.float32)}


def make_loader(sources: Sources, *, batch_size: int, seed: int, crop_seconds: float = 3.0,
                rir_seconds: float = 1.0, num_epochs: int | None = None,
                worker_count: int = 0, shard_index: int | None = None,
                shard_count: int | None = None, speech_only: bool = False) -> grain.DataLoader:
    """A grain ``DataLoader`` of batches ``{speech (B, crop), speech_length
    (B,), noise (B, crop), rir (B, rir_samples)}`` for this host (only
    ``speech`` and ``speech_length`` with ``speech_only``: the vocoder's input).

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
    crop = CropAndPair(sources, int(round(crop_seconds * SAMPLE_RATE)),
                       int(round(rir_seconds * SAMPLE_RATE)), speech_only)
    return grain.DataLoader(data_source=sources.speech, sampler=sampler,
                            operations=[crop, grain.transforms.Batch(batch_size,
                                                                     drop_remainder=True)],
                            worker_count=worker_count)


# ------------------------------------------------- the training loops' ---

def shipped_clip_source(copies: int = 8) -> list[dict]:
    """The demo's clip as a speech source (int16 records): ``copies`` records
    of it, so that up to that many hosts each get a shard."""
    return [{"audio": audio_io.to_pcm16(load_clip())}] * copies


def training_loader(config, host_batch: int, speech_only: bool = False) -> grain.DataLoader:
    """This host's training batches for a training ``config`` (``data_dir``,
    ``seed``, ``crop_seconds``, ``rir_seconds``, ``worker_count``): the built
    datasets, or the shipped clip when ``data_dir`` is empty."""
    if config.data_dir:
        sources = Sources.from_data_dir(config.data_dir, noise=not speech_only,
                                        rir=not speech_only)
    else:
        sources = Sources(speech=shipped_clip_source())
    return make_loader(sources, batch_size=host_batch, seed=config.seed,
                       crop_seconds=config.crop_seconds,
                       rir_seconds=config.get("rir_seconds", 1.0),
                       worker_count=config.worker_count, speech_only=speech_only)


def validation_sources(data_dir: str, speech_only: bool = False) -> Sources:
    """The validation split of ``data_dir``'s speech (other speakers than
    training), else — no data folder or no validation split — the training
    speech, said so."""
    import sys
    if not data_dir:
        return Sources(speech=shipped_clip_source())
    try:
        sources = Sources.from_data_dir(data_dir, split="validation", noise=not speech_only,
                                        rir=not speech_only)
        if len(sources.speech) > 0:
            return sources
    except UserError:   # a dataset built without a validation split
        pass
    print(f"warning: {data_dir} has no validation speech; validating on training speech",
          file=sys.stderr)
    return Sources.from_data_dir(data_dir, noise=not speech_only, rir=not speech_only)


def validation_batches(config, host_batch: int, speech_only: bool = False) -> list[dict]:
    """A fixed validation set: ``ceil(config.eval_examples / global batch)``
    batches of this host's crops (seed ``config.seed + 1``), read once and
    kept on the host."""
    import jax
    global_batch = host_batch * jax.process_count()
    count = max(1, -(-config.eval_examples // global_batch))
    data = make_loader(validation_sources(config.data_dir, speech_only),
                       batch_size=host_batch, seed=config.seed + 1,
                       crop_seconds=config.crop_seconds,
                       rir_seconds=config.get("rir_seconds", 1.0), worker_count=0,
                       speech_only=speech_only)
    it = iter(data)
    return [next(it) for _ in range(count)]

"""TFDS builders of the GSR datasets, without TensorFlow.

Audio is stored as an int16 ``tfds.features.Tensor`` (the ``Audio`` feature
needs TensorFlow) at 44.1 kHz mono, in array_record files that
``tfds.data_source`` reads with random access:

| dataset | splits | features |
| --- | --- | --- |
| ``gsr_speech`` | train, validation (by speaker) | audio, speaker, utterance |
| ``gsr_noise`` | train | audio, name |
| ``gsr_rir`` | train | rir (float32, peak 1), name, rt60 (-1 when unknown) |
| ``gsr_testset`` | test | degraded, clean, subset, name |
| ``gsr_paired`` | train, validation (by speaker or file) | degraded, clean, speaker, name, offset |

Each builder is given the prepared items (:mod:`vf_jax.data.sources`) and
writes them; ``python -m vf_jax.data build`` drives the whole job.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

VERSION = tfds.core.Version("1.0.0")
FILE_FORMAT = "array_record"


class _Builder(tfds.core.GeneratorBasedBuilder):
    """A builder fed by a callable producing ``{split: iterable of (key, example)}``."""
    VERSION = VERSION
    FEATURES: dict = {}
    DESCRIPTION = ""

    def __init__(self, *, splits=None, **kwargs):
        self._splits = splits
        super().__init__(file_format=FILE_FORMAT, **kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def _checksums_path(cls):
        # Nothing is downloaded, so no checksums file (TFDS would look for one
        # beside the module through a backport this project does not need).
        return None

    def _info(self):
        # DatasetInfo directly: dataset_info_from_configs reads metadata files
        # beside the module, which a package does not ship.
        return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                     features=tfds.features.FeaturesDict(self.FEATURES))

    def _split_generators(self, dl_manager):
        if self._splits is None:
            raise RuntimeError("build with python -m vf_jax.data build")
        return {name: examples for name, examples in self._splits().items()}

    def _generate_examples(self):   # pragma: no cover - splits are passed in
        raise NotImplementedError


def _pcm():
    return tfds.features.Tensor(shape=(None,), dtype=np.int16)


class GsrSpeech(_Builder):
    """Clean speech, 44.1 kHz, split into train and validation by speaker."""
    DESCRIPTION = __doc__
    FEATURES = {"audio": _pcm(), "speaker": tfds.features.Text(),
                "utterance": tfds.features.Text()}


class GsrNoise(_Builder):
    """Noise recordings, 44.1 kHz."""
    DESCRIPTION = __doc__
    FEATURES = {"audio": _pcm(), "name": tfds.features.Text()}


class GsrRir(_Builder):
    """Room impulse responses, 44.1 kHz, float32 with peak 1."""
    DESCRIPTION = __doc__
    FEATURES = {"rir": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                "name": tfds.features.Text(),
                "rt60": tfds.features.Scalar(dtype=np.float32)}


class GsrTestset(_Builder):
    """The released GSR test sets: degraded and clean pairs by subset."""
    DESCRIPTION = __doc__
    FEATURES = {"degraded": _pcm(), "clean": _pcm(), "subset": tfds.features.Text(),
                "name": tfds.features.Text()}


class GsrPaired(_Builder):
    """A user's own pairs: degraded and clean recordings of the same speech,
    aligned (``offset``: the samples of lag removed, degraded later when
    positive), 44.1 kHz, split into train and validation by speaker or file."""
    DESCRIPTION = __doc__
    FEATURES = {"degraded": _pcm(), "clean": _pcm(), "speaker": tfds.features.Text(),
                "name": tfds.features.Text(), "offset": tfds.features.Scalar(dtype=np.int32)}


BUILDERS = {"speech": GsrSpeech, "noise": GsrNoise, "rir": GsrRir, "testset": GsrTestset,
            "paired": GsrPaired}


def dataset_name(kind: str) -> str:
    return BUILDERS[kind].name


def data_source(kind: str, data_dir: str, split: str):
    """Random-access source of a built dataset (``ds[i]`` -> dict of numpy).
    A dataset that is not built, or lacks ``split``, is a :class:`vf_jax.errors.UserError`."""
    from vf_jax.errors import UserError
    builder = BUILDERS[kind](data_dir=data_dir)
    if not builder.is_prepared():
        raise UserError(f"no {builder.name} dataset in {data_dir}; build it with: python -m "
                        f"vf_jax.data build {kind} --src ... --data-dir {data_dir}")
    if split not in builder.info.splits:
        raise UserError(f"{builder.name} in {data_dir} has no {split!r} split "
                        f"(it has: {', '.join(builder.info.splits) or 'none'})")
    return builder.as_data_source(split=split)

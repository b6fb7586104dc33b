"""Finding and preparing the raw material of the GSR datasets.

- :func:`scan_speech`, :func:`scan_files`, :func:`scan_testset`: what a source
  folder holds (files with ids, speakers, pairs).
- :class:`Staging`: each file read, mixed down to mono, resampled to 44.1 kHz
  and kept as int16 in a staging folder, with the reason whenever a file is
  skipped (unreadable, empty, silent). A build that is interrupted resumes
  from there: files already staged are not read again.
- :func:`simulate_rir`: room impulse responses from pyroomacoustics for users
  who have none (ranges in :data:`ROOM_RANGES`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError, first_line

SILENCE_PEAK = 1e-4          # below this peak (about -80 dBFS) a file counts as silent


# ------------------------------------------------------------- scanning ---

@dataclasses.dataclass(frozen=True)
class Item:
    """One source file: ``key`` unique in its dataset, relative ``path``."""
    key: str
    path: str
    speaker: str = ""
    extra: tuple = ()


def speaker_of(rel: str) -> str:
    """VCTK's layout (``wav48/p225/p225_001.wav``) or any tree: the file's
    folder name when it is nested, else the file name up to the first ``_``
    or ``-``."""
    parts = rel.replace(os.sep, "/").split("/")
    if len(parts) > 1:
        return parts[-2]
    return re.split(r"[_\-]", os.path.splitext(parts[-1])[0])[0]


def scan_speech(src: str) -> list[Item]:
    return [Item(os.path.splitext(rel)[0], rel, speaker_of(rel))
            for rel in _audio_files(src)]


def scan_files(src: str) -> list[Item]:
    return [Item(os.path.splitext(rel)[0], rel) for rel in _audio_files(src)]


def _audio_files(src: str) -> list[str]:
    if not os.path.isdir(src):
        raise UserError(f"source folder not found: {src}")
    files = audio_io.find_audio_files(src)
    if not files:
        raise UserError(f"no audio files in {src}")
    return files


def validation_speakers(speakers, fraction: float) -> set[str]:
    """A stable choice of about ``fraction`` of the speakers (at least one when
    there are two or more): those whose hashed names sort first."""
    unique = sorted(set(speakers))
    if len(unique) < 2 or fraction <= 0:
        return set()
    count = max(1, round(fraction * len(unique)))
    ranked = sorted(unique, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    return set(ranked[:count])


# The released GSR test sets (Zenodo 5528144), as the original's evaluation
# pairs them (voicefixer_main, evaluation_proc/config.py): (subset, degraded
# folder, clean folder, id pattern in the degraded name, clean name from id).
TESTSET_LAYOUT = (
    ("all_gsr", "ALL_GSR/simulated", "ALL_GSR/target", r"\d+_", "{}clean.wav"),
    ("declip_0.10", "DECLI/0.1", "DECLI/GroundTruth", r"[sp]\d+_\d+", "{}_mic1.wav"),
    ("declip_0.25", "DECLI/0.25", "DECLI/GroundTruth", r"[sp]\d+_\d+", "{}_mic1.wav"),
    ("declip_0.50", "DECLI/0.5", "DECLI/GroundTruth", r"[sp]\d+_\d+", "{}_mic1.wav"),
    ("denoise", "DENOISE/vd_test/noisy_testset_wav", "DENOISE/vd_test/clean_testset_wav",
     r".+\.wav$", "{}"),
    *(("sr_cheby1_%d" % c, "SR/cheby1/%d" % c, "SR/GroundTruth", r"[sp]\d+_\d+_mic1", "{}.wav")
      for c in (1000, 2000, 4000, 8000, 12000)),
    ("derev", "DEREV/Reverb_Speech", "DEREV/GroundTruth", r"[sp]\d+_\d+_mic1", "{}.wav"),
)


def scan_testset(src: str) -> tuple[list[Item], list[str]]:
    """Pairs ``(degraded, clean)`` of every subset found under ``src``;
    returns the items (``extra`` = clean path, subset) and the degraded files
    without a clean partner."""
    if not os.path.isdir(src):
        raise UserError(f"source folder not found: {src}")
    items, unpaired = [], []
    for subset, degraded_dir, clean_dir, pattern, clean_name in TESTSET_LAYOUT:
        folder = os.path.join(src, degraded_dir)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith(".wav"):
                continue
            match = re.search(pattern, name)
            clean = os.path.join(clean_dir, clean_name.format(match.group(0))) if match else None
            rel = os.path.join(degraded_dir, name)
            if clean is None or not os.path.isfile(os.path.join(src, clean)):
                unpaired.append(rel)
                continue
            items.append(Item(f"{subset}/{os.path.splitext(name)[0]}", rel, "",
                              (clean, subset)))
    if not items:
        raise UserError(f"no GSR test set pairs under {src} (expected folders such as "
                        "ALL_GSR/simulated and ALL_GSR/target)")
    return items, unpaired


def open_tfds_speech(spec: str, data_dir: str | None = None, sample_rate: int | None = None):
    """A prepared TFDS speech dataset as a source, e.g. the catalogue's ``vctk``
    (48 kHz; preparing it needs TensorFlow and the download, in the
    array_record format: ``tfds.builder("vctk").download_and_prepare(
    file_format="array_record")``). ``spec`` is ``NAME`` or ``NAME:SPLIT``.

    Returns ``(records, read, meta)``: ``records`` random access,
    ``read(record)`` -> ``(audio (samples, 1) float32, rate)``, ``meta(record,
    index)`` -> ``{"speaker", "utterance"}``. The audio is the ``speech`` or
    ``audio`` feature (int16 or float); the rate its ``sample_rate`` or
    ``sample_rate`` given here; the speaker the ``speaker`` feature (class
    label or text); the utterance its ``id``, else the record index.
    """
    import tensorflow_datasets as tfds
    name, _, split = spec.partition(":")
    try:
        records = tfds.data_source(name, data_dir=data_dir, split=split or "train")
    except Exception as e:
        first = first_line(e)
        raise UserError(f"cannot open TFDS dataset {spec!r} (prepared in the array_record "
                        f"format?): {first}") from None
    features = records.dataset_info.features
    audio_key = next((k for k in ("speech", "audio") if k in features), None)
    if audio_key is None:
        raise UserError(f"TFDS dataset {name!r} has no 'speech' or 'audio' feature")
    rate = getattr(features[audio_key], "sample_rate", None) or sample_rate
    if not rate:
        raise UserError(f"TFDS dataset {name!r} does not record its sample rate; "
                        "give --src-rate")
    speaker = features["speaker"] if "speaker" in features else None

    def read(record):
        audio = np.asarray(record[audio_key])
        audio = (audio_io.from_pcm16(audio) if audio.dtype == np.int16
                 else audio.astype(np.float32)).reshape(len(audio), -1)
        if audio.size == 0:
            raise UserError("no samples")
        return audio, int(rate)

    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    def meta(record, index):
        who = record.get("speaker", "unknown")
        if speaker is not None and hasattr(speaker, "int2str"):
            who = speaker.int2str(int(who))
        return {"speaker": text(who), "utterance": text(record.get("id", index))}

    return records, read, meta


# -------------------------------------------------------------- staging ---

class Staging:
    """Prepared int16 audio per item under ``folder``, surviving interruption.

    ``prepare(item_path)`` returns the staged array path, or None with the
    reason recorded in :attr:`skipped`; :attr:`mixed_down` lists files that had
    several channels.
    """

    def __init__(self, folder: str, src: str):
        self.folder, self.src = folder, src
        os.makedirs(folder, exist_ok=True)
        self.skipped: dict[str, str] = {}
        self.mixed_down: list[str] = []

    def _paths(self, rel: str) -> tuple[str, str]:
        name = hashlib.sha256(rel.encode()).hexdigest()[:24]
        return os.path.join(self.folder, name + ".npy"), os.path.join(self.folder, name + ".json")

    def prepare(self, rel: str, read=None, meta: dict | None = None) -> str | None:
        """Stage ``rel`` (a file under the source folder, or any name with
        ``read() -> (audio (samples, channels), rate)``); ``meta`` is kept
        with it (:meth:`note` reads it back). Returns the staged array's path, or None."""
        array_path, note_path = self._paths(rel)
        if os.path.exists(note_path):                 # done in an earlier run
            note = self.note(rel)
        else:
            note = self._convert(rel, array_path, read)
            note["meta"] = meta or {}
            tmp = note_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(note, f)
            os.replace(tmp, note_path)
        if note.get("mixed_down"):
            self.mixed_down.append(rel)
        if note.get("skipped"):
            self.skipped[rel] = note["skipped"]
            return None
        return array_path

    def note(self, rel: str) -> dict | None:
        """What an earlier run recorded for ``rel`` (None: not staged yet)."""
        note_path = self._paths(rel)[1]
        if not os.path.exists(note_path):
            return None
        with open(note_path) as f:
            return json.load(f)

    def _convert(self, rel: str, array_path: str, read=None) -> dict:
        try:
            if read is None:
                data, sr = audio_io.read_audio(os.path.join(self.src, rel))
            else:
                data, sr = read()
        except UserError as e:
            return {"skipped": str(e).replace(os.path.join(self.src, ""), "")}
        note = {"mixed_down": data.shape[1] > 1, "rate": int(sr)}
        mono = audio_io.resample(data.mean(axis=1, keepdims=True), sr, SAMPLE_RATE)[:, 0]
        if mono.size == 0:
            return dict(note, skipped="no samples")
        if np.max(np.abs(mono)) < SILENCE_PEAK:
            return dict(note, skipped="silent")
        pcm = audio_io.to_pcm16(mono)
        tmp = array_path + ".tmp.npy"
        np.save(tmp, pcm)
        os.replace(tmp, array_path)
        return note

    @staticmethod
    def load(array_path: str) -> np.ndarray:
        return np.load(array_path)


# ------------------------------------------------------ simulated rooms ---

# Shoebox rooms (pyroomacoustics, image source method): documented ranges.
ROOM_RANGES = {
    "length_m": (3.0, 10.0), "width_m": (3.0, 8.0), "height_m": (2.5, 4.0),
    "rt60_s": (0.2, 1.0), "distance_m": (0.5, 3.0),
}


def simulate_rir(rng: np.random.Generator, ranges: dict = ROOM_RANGES) -> tuple[np.ndarray, float]:
    """One RIR at 44.1 kHz from a random shoebox room: ``(rir, rt60)``.

    Room sides and RT60 are uniform in their ranges; absorption and reflection
    order follow from Sabine's formula (``pyroomacoustics.inverse_sabine``);
    source and microphone are at least 0.5 m from the walls, 0.5-3 m apart.
    """
    import pyroomacoustics as pra
    while True:
        dims = np.array([rng.uniform(*ranges["length_m"]), rng.uniform(*ranges["width_m"]),
                         rng.uniform(*ranges["height_m"])])
        rt60 = float(rng.uniform(*ranges["rt60_s"]))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:             # RT60 impossible for this room: draw again
            continue
        margin = 0.5
        mic = rng.uniform(margin, dims - margin)
        for _ in range(100):
            source = rng.uniform(margin, dims - margin)
            distance = np.linalg.norm(source - mic)
            if ranges["distance_m"][0] <= distance <= ranges["distance_m"][1]:
                break
        else:
            continue
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                           max_order=min(max_order, 40))
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], np.float64)
        return (rir / np.max(np.abs(rir))).astype(np.float32), rt60

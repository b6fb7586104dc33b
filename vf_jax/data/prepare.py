"""``python -m vf_jax.data build {speech,noise,rir,testset,paired}``: build a dataset.

Two stages, so that an interrupted build resumes: (1) every source file is
read, mixed down, resampled to 44.1 kHz and staged as int16 under
``DATA_DIR/.staging/<dataset>`` (files already staged are skipped); (2) TFDS
writes the array_record dataset from the staged arrays, then the staging
folder is removed. Files that cannot be used are counted and listed, with the
reason, in ``DATA_DIR/<dataset>_build_log.json``; multichannel files are mixed
down and listed there too. ``paired`` stages both sides of each pair and
aligns them (:func:`stage_pairs`); its log lists the skipped pairs with their
reasons, the files without a partner and the offsets removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.data import alignment, builders, sources
from vf_jax.errors import UserError


def _progress(items, desc: str, quiet: bool):
    if quiet:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)


def build(kind: str, data_dir: str, src: str | None = None, *, simulate: int = 0,
          seed: int = 0, validation_fraction: float = 0.05, overwrite: bool = False,
          quiet: bool = False, src_data_dir: str | None = None,
          src_rate: int | None = None, pairs: dict | None = None,
          verify_tls: bool = True) -> dict:
    """Build dataset ``kind`` into ``data_dir``; returns the build log.

    ``src``: a folder, or for speech ``tfds:NAME[:SPLIT]``, a prepared TFDS
    dataset such as the catalogue's ``vctk`` (in ``src_data_dir``; rate
    ``src_rate`` if the dataset does not record it). ``paired`` takes
    ``pairs`` instead: the arguments of :func:`stage_pairs` but ``staging_dir``
    (``degraded``, ``clean`` folders, ``split_by``...). ``verify_tls``: TFDS
    checks the certificates of what it downloads; False skips that, with a
    warning (a network that intercepts TLS), never by default.
    """
    if kind not in builders.BUILDERS:
        raise UserError(f"unknown dataset {kind!r}; one of {sorted(builders.BUILDERS)}")
    name = builders.dataset_name(kind)
    builder = builders.BUILDERS[kind](data_dir=data_dir)
    if builder.is_prepared():
        if not overwrite:
            raise UserError(f"{name} is already built in {data_dir} (use --overwrite to rebuild)")
        shutil.rmtree(os.path.join(data_dir, name, str(builders.VERSION)))
    simulating = kind == "rir" and simulate > 0
    if simulating and src is not None:
        raise UserError("give either --src or --simulate, not both")
    if kind == "paired":
        if src is not None or not pairs or not pairs.get("degraded") or not pairs.get("clean"):
            raise UserError("give --degraded DIR and --clean DIR (not --src)")
    elif not simulating and src is None:
        raise UserError("give --src DIR" + (" or --simulate N" if kind == "rir" else ""))
    os.makedirs(data_dir, exist_ok=True)
    staging_dir = os.path.join(data_dir, ".staging", name)
    log = {"dataset": name, "source": src, "skipped": {}, "mixed_down": [], "unpaired": []}

    if kind == "paired":
        splits, log = stage_pairs(staging_dir=staging_dir, log=log, quiet=quiet,
                                  validation_fraction=validation_fraction, **pairs)
    elif simulating:
        splits, log = _simulated_rirs(simulate, seed, staging_dir, log, quiet)
    else:
        staging = sources.Staging(staging_dir, src)
        if kind == "speech" and src.startswith("tfds:"):
            staged = _stage_tfds(src[len("tfds:"):], staging, src_data_dir, src_rate, quiet)
            items, log["unpaired"] = [], []
        else:
            scan = {"speech": sources.scan_speech, "noise": sources.scan_files,
                    "rir": sources.scan_files}.get(kind)
            if scan is not None:
                items, log["unpaired"] = scan(src), []
            else:
                items, log["unpaired"] = sources.scan_testset(src)
            staged = {}
        for item in _progress(items, f"reading {name}", quiet):
            paths = [staging.prepare(item.path)]
            if kind == "testset":
                paths.append(staging.prepare(item.extra[0]))
            if all(p is not None for p in paths):
                staged[item.key] = (item, paths)
        log["skipped"], log["mixed_down"] = staging.skipped, staging.mixed_down
        if not staged:
            raise UserError(f"no usable audio in {src} ({len(staging.skipped)} file(s) skipped)")
        splits = _splits(kind, staged, validation_fraction, log)

    import tensorflow_datasets as tfds
    if quiet:
        tfds.disable_progress_bar()
    builders.BUILDERS[kind](data_dir=data_dir, splits=splits).download_and_prepare(
        download_config=download_config(verify_tls))
    shutil.rmtree(staging_dir, ignore_errors=True)
    for leftover in (os.path.join(data_dir, ".staging"), os.path.join(data_dir, "downloads")):
        _remove_empty_tree(leftover)
    with open(os.path.join(data_dir, f"{name}_build_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    return log


def _stage_tfds(spec: str, staging, data_dir, rate, quiet: bool) -> dict:
    """Stage the records of a TFDS speech dataset; ``{key: (Item, [path])}``."""
    records, read, meta = sources.open_tfds_speech(spec, data_dir, rate)
    name = spec.partition(":")[0]
    staged = {}
    for index in _progress(range(len(records)), f"reading {spec}", quiet):
        rel = f"{spec}/{index}"
        note = staging.note(rel)
        if note is None:                       # not staged in an earlier run
            record = records[index]
            path = staging.prepare(rel, read=lambda: read(record), meta=meta(record, index))
            info = staging.note(rel)["meta"]
        else:
            path, info = staging.prepare(rel), note["meta"]
        if path is not None:
            key = f"{name}/{info['speaker']}/{info['utterance']}"
            staged[key] = (sources.Item(key, rel, info["speaker"]), [path])
    return staged


def _remove_empty_tree(path: str) -> None:
    """Remove ``path`` if it holds nothing but empty folders."""
    if not os.path.isdir(path):
        return
    for root, dirs, files in os.walk(path, topdown=False):
        if files:
            return
    shutil.rmtree(path)


def download_config(verify_tls: bool = True):
    """TFDS's download settings: certificates checked unless ``verify_tls``
    is False, which warns on stderr."""
    import tensorflow_datasets as tfds
    if not verify_tls:
        print("warning: TLS certificates are not checked for this build's downloads "
              "(--no-verify-tls)", file=sys.stderr)
    return tfds.download.DownloadConfig(verify_ssl=verify_tls, try_download_gcs=False)


def _splits(kind: str, staged: dict, validation_fraction: float, log: dict):
    load = sources.Staging.load
    if kind == "speech":
        held_out = sources.validation_speakers((i.speaker for i, _ in staged.values()),
                                               validation_fraction)
        log["validation_speakers"] = sorted(held_out)
        parts = {"train": [k for k, (i, _) in staged.items() if i.speaker not in held_out],
                 "validation": [k for k, (i, _) in staged.items() if i.speaker in held_out]}
        parts = {s: keys for s, keys in parts.items() if keys}

        def examples(keys):
            for key in keys:
                item, (path,) = staged[key]
                yield key, {"audio": load(path), "speaker": item.speaker,
                            "utterance": os.path.basename(key)}
    elif kind == "testset":
        parts = {"test": list(staged)}

        def examples(keys):
            for key in keys:
                item, (degraded, clean) = staged[key]
                d, c = load(degraded), load(clean)
                n = min(len(d), len(c))           # the original asserts equal lengths
                yield key, {"degraded": d[:n], "clean": c[:n], "subset": item.extra[1],
                            "name": os.path.basename(key)}
    else:
        parts = {"train": list(staged)}

        def examples(keys):
            for key in keys:
                _, (path,) = staged[key]
                audio = load(path)
                if kind == "noise":
                    yield key, {"audio": audio, "name": key}
                else:
                    rir = audio.astype(np.float32)
                    rir /= max(float(np.max(np.abs(rir))), 1.0)
                    yield key, {"rir": rir, "name": key, "rt60": np.float32(-1.0)}
    log["examples"] = {s: len(keys) for s, keys in parts.items()}
    return lambda: {s: examples(keys) for s, keys in parts.items()}


def stage_pairs(degraded: str, clean: str, staging_dir: str, log: dict, *,
                split_by: str = "speaker", validation_fraction: float = 0.1,
                max_offset: float = 0.5, min_correlation: float = alignment.MIN_CORRELATION,
                any_rate: bool = False, quiet: bool = False):
    """The ``paired`` dataset's splits from two folders paired by relative path
    (:func:`vf_jax.audio.io.pair_audio_files`). Both sides are staged (mono,
    44.1 kHz, resumable); a pair is skipped, with its reason in
    ``log["skipped"]``, when a side is unreadable, empty or silent, the two
    were recorded at different rates (unless ``any_rate``), or they do not
    align (:func:`vf_jax.data.alignment.align_pair`, ``max_offset`` seconds,
    ``min_correlation``); files without a partner go to ``log["unpaired"]``
    (``degraded/...`` or ``clean/...``). Validation: about
    ``validation_fraction`` of the speakers (:func:`vf_jax.data.sources.speaker_of`
    of the relative path), or of the files with ``split_by="file"`` or when
    there is only one speaker."""
    for flag, folder in (("--degraded", degraded), ("--clean", clean)):
        if not os.path.isdir(folder):
            raise UserError(f"{flag} {folder} is not a folder")
    if split_by not in ("speaker", "file"):
        raise UserError(f"--split-by must be speaker or file, got {split_by!r}")
    found, only_degraded, only_clean = audio_io.pair_audio_files(degraded, clean)
    log.update(source={"degraded": degraded, "clean": clean}, aligned={},
               unpaired=[f"degraded/{k}" for k in only_degraded]
               + [f"clean/{k}" for k in only_clean])
    if not found:
        raise UserError(f"no files of {degraded} pair with files of {clean} (pairing is by "
                        "relative path without the extension)")
    sides = {"degraded": sources.Staging(os.path.join(staging_dir, "degraded"), degraded),
             "clean": sources.Staging(os.path.join(staging_dir, "clean"), clean)}
    staged, skipped = {}, {}
    for key, degraded_path, clean_path in _progress(found, "reading pairs", quiet):
        paths, rates, reasons = {}, {}, []
        for side, path in (("degraded", degraded_path), ("clean", clean_path)):
            rel = os.path.relpath(path, degraded if side == "degraded" else clean)
            paths[side] = sides[side].prepare(rel)
            if paths[side] is None:
                reasons.append(f"{side}: {sides[side].skipped[rel]}")
            else:
                rates[side] = sides[side].note(rel).get("rate")
        if not reasons and rates["degraded"] != rates["clean"] and not any_rate:
            reasons.append(f"rates differ (degraded {rates['degraded']} Hz, clean "
                           f"{rates['clean']} Hz; --any-rate resamples both to 44.1 kHz)")
        if reasons:
            skipped[key] = "; ".join(reasons)
            continue
        try:
            _, _, lag = alignment.align_pair(
                audio_io.from_pcm16(sources.Staging.load(paths["degraded"])),
                audio_io.from_pcm16(sources.Staging.load(paths["clean"])),
                audio_io.SAMPLE_RATE, max_offset, min_correlation)
        except alignment.Unaligned as e:
            skipped[key] = str(e)
            continue
        if lag:
            log["aligned"][key] = round(lag / audio_io.SAMPLE_RATE, 6)
        staged[key] = (paths, lag)
    log["skipped"] = skipped
    log["mixed_down"] = sides["degraded"].mixed_down + sides["clean"].mixed_down
    if not staged:
        raise UserError(f"no usable pairs in {degraded} and {clean} ({len(skipped)} skipped, "
                        f"{len(log['unpaired'])} without a partner)")
    speaker = {key: sources.speaker_of(key) for key in staged}
    if split_by == "speaker" and len(set(speaker.values())) < 2:
        split_by = "file"    # one speaker: hold out files
    names = speaker if split_by == "speaker" else {key: key for key in staged}
    held_out = sources.validation_speakers(names.values(), validation_fraction)
    log["split_by"] = split_by
    log["validation"] = sorted(held_out)
    parts = {"train": [k for k in staged if names[k] not in held_out],
             "validation": [k for k in staged if names[k] in held_out]}
    parts = {s: keys for s, keys in parts.items() if keys}
    log["examples"] = {s: len(keys) for s, keys in parts.items()}

    def examples(keys):
        for key in keys:
            paths, lag = staged[key]
            d, c = alignment.cut(sources.Staging.load(paths["degraded"]),
                                 sources.Staging.load(paths["clean"]), lag)
            yield key, {"degraded": d, "clean": c, "speaker": speaker[key],
                        "name": key, "offset": np.int32(lag)}
    return (lambda: {s: examples(keys) for s, keys in parts.items()}), log


def _simulated_rirs(count: int, seed: int, staging_dir: str, log: dict, quiet: bool):
    """Simulate ``count`` RIRs (resumable: each is staged as it is made)."""
    os.makedirs(staging_dir, exist_ok=True)
    log["simulated"] = {"count": count, "seed": seed, "ranges": sources.ROOM_RANGES}
    paths = []
    for i in _progress(range(count), "simulating rooms", quiet):
        path = os.path.join(staging_dir, f"room_{i:06d}.npz")
        if not os.path.exists(path):
            rir, rt60 = sources.simulate_rir(np.random.default_rng([seed, i]))
            tmp = path + ".tmp.npz"
            np.savez(tmp, rir=rir, rt60=rt60)
            os.replace(tmp, path)
        paths.append(path)
    log["examples"] = {"train": count}

    def examples():
        for i, path in enumerate(paths):
            with np.load(path) as f:
                yield f"room_{i:06d}", {"rir": f["rir"], "name": f"room_{i:06d}",
                                         "rt60": np.float32(f["rt60"])}
    return (lambda: {"train": examples()}), log

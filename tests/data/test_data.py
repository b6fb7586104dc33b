"""TFDS datasets built from local folders, resumable builds, and the grain loader."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from vf_jax.audio.synthetic import speech_like
from vf_jax.data import builders, loader
from vf_jax.data import prepare as build_lib
from vf_jax.data.__main__ import main as data_main

from helpers import build_interrupted_then_again

SR = 44100


def write(path, audio, sr=SR, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, sr, **kw)


@pytest.fixture(scope="module")
def speech_tree(tmp_path_factory):
    """VCTK-like: five speakers, mixed rates, plus a silent, a broken and a stereo file."""
    src = tmp_path_factory.mktemp("speech")
    for s, speaker in enumerate(["p225", "p226", "p227", "p228", "p229"]):
        for u in range(3):
            sr = (16000, 22050, 48000)[u]
            x = speech_like(0.4 + 0.3 * u, seed=10 * s + u)
            idx = np.round(np.arange(int(len(x) * sr / SR)) * SR / sr).astype(int)
            write(src / "wav48" / speaker / f"{speaker}_{u:03d}.flac", x[idx], sr)
    write(src / "wav48" / "p225" / "p225_silent.wav", np.zeros(4000), SR)
    (src / "wav48" / "p226" / "p226_broken.wav").write_bytes(b"RIFF....WAVEjunk")
    write(src / "wav48" / "p227" / "p227_stereo.wav", np.stack([speech_like(0.5)] * 2, 1), SR)
    return src


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, speech_tree):
    out = tmp_path_factory.mktemp("tfds")
    build_lib.build("speech", str(out), str(speech_tree), validation_fraction=0.2, quiet=True)
    noise = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    write(noise / "babble.wav", 0.3 * rng.standard_normal(SR // 4), SR)       # shorter than a crop
    write(noise / "street.wav", 0.3 * rng.standard_normal(2 * SR), 22050)
    build_lib.build("noise", str(out), str(noise), quiet=True)
    build_lib.build("rir", str(out), simulate=2, seed=3, quiet=True)
    return out


def test_speech_dataset_resampled_split_by_speaker_with_log(data_dir, speech_tree):
    log = json.loads((data_dir / "gsr_speech_build_log.json").read_text())
    assert sorted(log["skipped"]) == ["wav48/p225/p225_silent.wav", "wav48/p226/p226_broken.wav"]
    assert log["skipped"]["wav48/p225/p225_silent.wav"] == "silent"
    assert log["mixed_down"] == ["wav48/p227/p227_stereo.wav"]
    assert len(log["validation_speakers"]) == 1            # 20 % of five speakers
    held_out = log["validation_speakers"][0]
    usable = {"p225": 3, "p226": 3, "p227": 4, "p228": 3, "p229": 3}
    assert log["examples"] == {"train": 16 - usable[held_out], "validation": usable[held_out]}
    train = builders.data_source("speech", str(data_dir), "train")
    validation = builders.data_source("speech", str(data_dir), "validation")
    speakers = lambda ds: {ds[i]["speaker"].decode() for i in range(len(ds))}
    assert not speakers(train) & speakers(validation)
    assert speakers(train) | speakers(validation) == {"p225", "p226", "p227", "p228", "p229"}
    by_name = {train[i]["utterance"].decode(): train[i] for i in range(len(train))}
    by_name.update({validation[i]["utterance"].decode(): validation[i]
                    for i in range(len(validation))})
    rec = by_name["p228_002"]                       # written at 48 kHz, 1.0 s
    assert rec["audio"].dtype == np.int16 and abs(len(rec["audio"]) - SR) <= 2
    assert (data_dir / "gsr_speech" / "1.0.0").is_dir()
    assert not (data_dir / ".staging").exists()


def test_interrupted_build_resumes_without_rereading(tmp_path, speech_tree, monkeypatch):
    out = tmp_path / "tfds"
    log, reads = build_interrupted_then_again(
        monkeypatch, 3, lambda: build_lib.build("speech", str(out), str(speech_tree), quiet=True))
    assert reads == []                      # every file was staged by the first run
    assert sum(log["examples"].values()) == 16
    assert builders.BUILDERS["speech"](data_dir=str(out)).is_prepared()


def test_noise_and_simulated_rirs(data_dir):
    noise = builders.data_source("noise", str(data_dir), "train")
    assert len(noise) == 2
    lengths = sorted(len(noise[i]["audio"]) for i in range(2))
    assert abs(lengths[0] - SR // 4) <= 1 and abs(lengths[1] - 4 * SR) <= 2   # 22.05k -> 44.1k
    rirs = builders.data_source("rir", str(data_dir), "train")
    assert len(rirs) == 2
    for i in range(2):
        rec = rirs[i]
        assert rec["rir"].dtype == np.float32 and np.max(np.abs(rec["rir"])) == pytest.approx(1.0)
        assert 0.2 <= rec["rt60"] <= 1.0
        # Direct path first: before it only the fractional-delay filter's ringing.
        rir, first = rec["rir"], int(np.argmax(np.abs(rec["rir"])))
        assert np.sum(rir[:max(first - 40, 0)] ** 2) < 0.01 * np.sum(rir ** 2)


def test_testset_pairs_by_the_original_layout(tmp_path):
    src = tmp_path / "TestSets"
    x = speech_like(0.5)
    write(src / "ALL_GSR" / "simulated" / "12_noisy_lowpass.wav", x)
    write(src / "ALL_GSR" / "target" / "12_clean.wav", x)
    write(src / "ALL_GSR" / "simulated" / "13_orphan.wav", x)
    write(src / "DECLI" / "0.25" / "p232_005_clip.wav", np.clip(x, -0.1, 0.1))
    write(src / "DECLI" / "GroundTruth" / "p232_005_mic1.wav", x)
    write(src / "SR" / "cheby1" / "4000" / "p257_010_mic1.wav", x)
    write(src / "SR" / "GroundTruth" / "p257_010_mic1.wav", x[:-100])    # lengths aligned
    out = tmp_path / "tfds"
    assert data_main(["build", "testset", "--src", str(src), "--data-dir", str(out),
                      "--quiet"]) == 0
    log = json.loads((out / "gsr_testset_build_log.json").read_text())
    assert log["unpaired"] == [os.path.join("ALL_GSR", "simulated", "13_orphan.wav")]
    ds = builders.data_source("testset", str(out), "test")
    subsets = sorted(ds[i]["subset"].decode() for i in range(len(ds)))
    assert subsets == ["all_gsr", "declip_0.25", "sr_cheby1_4000"]
    for i in range(len(ds)):
        assert len(ds[i]["degraded"]) == len(ds[i]["clean"])


def test_build_command_errors_are_one_line(tmp_path, data_dir, capsys):
    assert data_main(["build", "speech", "--src", str(tmp_path / "missing"),
                      "--data-dir", str(tmp_path / "d")]) == 1
    assert "source folder not found" in capsys.readouterr().err
    assert data_main(["build", "speech", "--src", str(tmp_path), "--data-dir",
                      str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "already built" in err and len(err.strip().splitlines()) == 1
    assert data_main(["build", "rir", "--data-dir", str(tmp_path / "d")]) == 1
    assert "--simulate" in capsys.readouterr().err


def take(dl, n):
    it = iter(dl)
    return it, [next(it) for _ in range(n)]


def test_loader_crops_pairs_and_is_deterministic(data_dir):
    src = loader.Sources.from_data_dir(str(data_dir))
    assert src.noise is not None and src.rir is not None
    make = lambda seed: loader.make_loader(src, batch_size=3, seed=seed, crop_seconds=0.75,
                                           rir_seconds=0.5, shard_index=0, shard_count=1)
    _, a = take(make(1), 4)
    _, b = take(make(1), 4)
    _, c = take(make(2), 4)
    crop = int(0.75 * SR)
    for batch in a:
        assert batch["speech"].shape == batch["noise"].shape == (3, crop)
        assert batch["rir"].shape == (3, SR // 2)
        for row, n in zip(batch["speech"], batch["speech_length"]):
            assert 0 < n <= crop and np.all(row[n:] == 0)        # short clips padded
        assert np.all(np.std(batch["noise"], axis=1) > 0.05)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["speech"], c[0]["speech"])


def test_loader_resumes_exactly_from_its_state(data_dir):
    src = loader.Sources.from_data_dir(str(data_dir))
    dl = loader.make_loader(src, batch_size=2, seed=5, crop_seconds=0.5,
                            shard_index=0, shard_count=1)
    it, _ = take(dl, 3)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    resumed = iter(dl)
    resumed.set_state(state)
    for x in expected:
        y = next(resumed)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_loader_shards_hosts_disjointly(data_dir):
    src = loader.Sources.from_data_dir(str(data_dir), noise=False, rir=False)
    seen = []
    for shard in range(2):
        dl = loader.make_loader(src, batch_size=1, seed=0, crop_seconds=5.0, num_epochs=1,
                                shard_index=shard, shard_count=2)
        # Crops longer than every clip keep whole utterances: identify by content.
        seen.append({round(float(np.sum(np.abs(b["speech"]))), 3) for b in dl})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    # Equal shards: the remainder of an uneven split is dropped.
    assert len(seen[0]) == len(seen[1]) == len(src.speech) // 2


def test_speech_from_a_prepared_tfds_dataset(tmp_path):
    """``--src tfds:NAME``: a catalogue-style dataset (VCTK's features: 48 kHz
    int16 ``speech``, class-label ``speaker``, ``id``) becomes gsr_speech."""
    import tensorflow_datasets as tfds

    class FakeCatalogueVctk(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        @tfds.core.utils.classproperty
        @classmethod
        def _checksums_path(cls):
            return None

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "id": np.str_,
                "speech": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                "speaker": tfds.features.ClassLabel(names=["p225", "p226", "p227"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(6):
                x = speech_like(0.5, seed=i)
                x48 = np.interp(np.arange(24000) * SR / 48000, np.arange(len(x)), x)
                yield f"k{i}", {"id": f"p22{5 + i % 3}_{i:03d}",
                                "speech": (x48 * 32767).astype(np.int16), "speaker": i % 3}

    catalogue = tmp_path / "catalogue"
    FakeCatalogueVctk(data_dir=str(catalogue), file_format="array_record").download_and_prepare()
    out = tmp_path / "out"
    assert data_main(["build", "speech", "--src", "tfds:fake_catalogue_vctk", "--data-dir",
                      str(out), "--quiet", "--src-data-dir", str(catalogue)]) == 1   # no rate
    assert data_main(["build", "speech", "--src", "tfds:fake_catalogue_vctk", "--data-dir",
                      str(out), "--src-data-dir", str(catalogue), "--src-rate", "48000",
                      "--validation-fraction", "0.34", "--quiet"]) == 0
    train = builders.data_source("speech", str(out), "train")
    validation = builders.data_source("speech", str(out), "validation")
    assert len(train) + len(validation) == 6 and len(validation) == 2
    rec = train[0]
    assert rec["speaker"].decode() in {"p225", "p226", "p227"}
    assert rec["utterance"].decode().startswith(rec["speaker"].decode())
    assert abs(len(rec["audio"]) - SR // 2) <= 1            # 48 kHz -> 44.1 kHz


def test_background_workers_are_deterministic(data_dir):
    src = loader.Sources.from_data_dir(str(data_dir))
    runs = []
    for _ in range(2):
        dl = loader.make_loader(src, batch_size=2, seed=3, crop_seconds=0.5, worker_count=2,
                                shard_index=0, shard_count=1)
        it = iter(dl)
        runs.append([next(it) for _ in range(3)])
        del it
    for a, b in zip(*runs):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_dataset_downloads_check_tls_unless_asked_with_a_warning(capsys):
    from vf_jax.data import prepare
    assert prepare.download_config().verify_ssl is True
    assert capsys.readouterr().err == ""
    assert prepare.download_config(verify_tls=False).verify_ssl is False
    assert "not checked" in capsys.readouterr().err

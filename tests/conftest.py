import os
import pathlib
import sys

import pytest

# The tests' programs are compiled with XLA's backend (LLVM) optimisation at
# level 0: the same HLO programs, hence the same results to rounding, with
# code generated about 1.3-1.6x sooner (most of the suite's time is XLA
# compiling, and most of that is generating each fusion's code). Users,
# benchmarks and notebooks outside the tests keep XLA's default (2).
# Subprocesses inherit it; a test that sets XLA_FLAGS keeps TEST_XLA_FLAGS.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()

# One persistent compilation cache for the session, shared with the
# subprocesses the tests start (they inherit the variable): a program that
# several tests, runs or processes compile is compiled once. It never touches
# the user's own cache.
import tempfile  # noqa: E402

if not os.environ.get("VF_JAX_COMPILATION_CACHE"):
    import atexit
    import shutil
    _cache = tempfile.mkdtemp(prefix="vf_jax_test_cache_")
    os.environ["VF_JAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

# JAX's runtime is the CPU whatever is installed: with libtpu present (the
# tests compile for TPU topologies ahead of time, tests/aot/test_tpu_compile.py)
# JAX would otherwise look for a TPU. libtpu takes a lock file per machine
# unless told that several processes (the xdist workers) may load it.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

# Nothing is downloaded from the internet: without weights the commands stop
# with the command that fetches them (tests/restoration/test_download.py turns
# this off against its own loopback server). The weights' default folder is
# the session's own, empty one, never the user's.
os.environ["VF_JAX_OFFLINE"] = "1"
if not os.environ.get("VF_JAX_WEIGHTS"):
    os.environ["VF_JAX_WEIGHTS"] = os.path.join(tempfile.mkdtemp(prefix="vf_jax_test_home_"),
                                                "weights")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vf_jax import compilation  # noqa: E402

compilation.enable_compilation_cache()


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """The original package with seeded random weights, and its checkpoint files."""
    from vf_jax import original as oracle_lib
    home_before = os.environ.get("HOME")
    home = tmp_path_factory.mktemp("oracle_home")
    original, vf_path, voc_path = oracle_lib.make_oracle(home)
    if home_before is not None:
        os.environ["HOME"] = home_before
    return original, vf_path, voc_path


@pytest.fixture(scope="session")
def converted(oracle):
    """Our variables converted from the oracle's checkpoint files."""
    from vf_jax.restoration import convert
    _, vf_path, voc_path = oracle
    variables, report, provenance = convert.convert(vf_path, voc_path)
    return variables, report


@pytest.fixture(scope="session")
def weights_dir(converted, tmp_path_factory):
    """A weights folder written from the oracle's checkpoints."""
    from vf_jax.restoration import weights
    variables, report = converted
    path = tmp_path_factory.mktemp("weights") / "voicefixer"
    weights.save(str(path), variables, weights.describe("released", {}, report))
    return str(path)


@pytest.fixture(scope="session")
def small_weights_dir(tmp_path_factory):
    """A weights folder with seeded random VF-BiGRU analysis and a small
    generator (:func:`helpers.write_small_weights`): for the tests of
    restoring's behaviour (files, rates, channels, windows, errors), which
    compile and run ten times faster with it than with the published sizes.
    Parity with the original uses :func:`weights_dir`."""
    from helpers import write_small_weights
    return write_small_weights(str(tmp_path_factory.mktemp("weights") / "small"))



@pytest.fixture(scope="session")
def speech_files(tmp_path_factory):
    """Real speech (the shipped clip, cut and resampled) as the restoration
    page gets it (tests/serving/):
    ``{"short": 2.5 s mono 16 kHz WAV, "stereo": 3 s stereo 44.1 kHz FLAC,
    "corrupt": bytes that are not audio, "nan": a float WAV with NaNs,
    "empty": a WAV without samples}``."""
    import numpy as np
    import soundfile as sf

    from vf_jax.audio.io import resample
    from vf_jax.data.clip import load_clip
    folder = tmp_path_factory.mktemp("uploads")
    clip = load_clip()
    short = resample(clip[:int(2.5 * 44100), None], 44100, 16000)
    sf.write(folder / "short.wav", short, 16000, subtype="PCM_16")
    stereo = np.stack([clip[44100:4 * 44100], 0.5 * clip[2 * 44100:5 * 44100]], axis=1)
    sf.write(folder / "stereo.flac", stereo, 44100)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVE" + b"not audio" * 40)
    bad = clip[:44100].copy()
    bad[100:200] = np.nan
    sf.write(folder / "nan.wav", bad, 44100, subtype="FLOAT")
    sf.write(folder / "empty.wav", np.zeros((0, 1)), 44100)
    return {name: str(folder / f) for name, f in (
        ("short", "short.wav"), ("stereo", "stereo.flac"), ("corrupt", "corrupt.wav"),
        ("nan", "nan.wav"), ("empty", "empty.wav"))}


# The slowest modules first (measured with --durations): with
# ``--dist loadfile --no-loadscope-reorder`` the workers take whole modules in
# this order, the longest first, so that none is left with a long module at
# the end while the other idles. Modules not listed keep their order, after.
SLOWEST_FIRST = ("aot/test_tpu_compile.py", "training/test_vocoder_training.py",
                 "restoration/test_parity.py", "training/test_finetune.py",
                 "training/test_train_step.py", "training/test_train_loop.py",
                 "colab/test_notebook.py", "models/test_vocoder_parts.py",
                 "restoration/test_corpus.py", "restoration/test_restore.py",
                 "serving/test_server.py", "serving/test_browser.py",
                 "commands/test_demo_and_metrics.py", "audio/test_degradations.py",
                 "data/test_data.py", "models/test_models.py", "evaluation/test_evaluate.py")

# Markers, so that a contributor can run a quick subset (``pytest -m "not slow"``,
# ``-m "not parity"``); CI runs everything. ``slow`` (about half a minute or
# more alone, measured with --durations) and ``multiprocess`` (several
# processes or simulated devices) are decorators in the test files;
# ``parity`` is every test that builds the original package, i.e. uses one of
# the fixtures below that do.
PARITY_FIXTURES = {"oracle", "converted", "weights_dir"}
TESTS = pathlib.Path(__file__).resolve().parent


def pytest_configure(config):
    for name, what in (("parity", "compares with the original package (PyTorch)"),
                       ("multiprocess", "starts several processes or simulated devices"),
                       ("slow", "takes about half a minute or more")):
        config.addinivalue_line("markers", f"{name}: {what}")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(TESTS).as_posix(), len(rank)))
    for item in items:
        if PARITY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.parity)

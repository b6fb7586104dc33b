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
if not os.environ.get("VF_JAX_COMPILATION_CACHE"):
    import atexit
    import shutil
    import tempfile
    _cache = tempfile.mkdtemp(prefix="vf_jax_test_cache_")
    os.environ["VF_JAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

# JAX's runtime is the CPU whatever is installed: with libtpu present (the
# tests compile for TPU topologies ahead of time, tests/test_tpu_compile.py)
# JAX would otherwise look for a TPU. libtpu takes a lock file per machine
# unless told that several processes (the xdist workers) may load it.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

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


# The slowest modules first (measured with --durations): with
# ``--dist loadfile --no-loadscope-reorder`` the workers take whole modules in
# this order, the longest first, so that none is left with a long module at
# the end while the other idles. Modules not listed keep their order, after.
SLOWEST_FIRST = ("test_tpu_compile.py", "test_vocoder_training.py", "test_parity.py",
                 "test_finetune.py", "test_train_step.py", "test_train_loop.py",
                 "test_notebook.py", "test_vocoder_parts.py", "test_corpus.py", "test_restore.py",
                 "test_demo_and_metrics.py", "test_degradations.py", "test_data.py",
                 "test_models.py", "test_evaluate.py")


# Markers, so that a contributor can run a quick subset (``pytest -m "not slow"``,
# ``-m "not parity"``); CI runs everything. ``parity``: the test builds the
# original package (PyTorch, seeded weights). ``multiprocess``: it starts
# several processes or simulated devices. ``slow``: it takes about half a
# minute or more alone (measured with --durations).
PARITY_FIXTURES = {"oracle", "converted", "weights_dir"}
MULTIPROCESS = {"test_train_step.py::test_data_parallel_steps_match_one_device",
                "test_vocoder_training.py::test_data_parallel_steps_match_one_device",
                "test_train_loop.py::test_two_processes_train_together_and_resume",
                "test_corpus.py::test_two_processes_share_a_folder_through_jax_distributed",
                "test_corpus.py::test_killed_three_times_ends_as_an_uninterrupted_run",
                "test_corpus.py::test_sigterm_stops_cleanly_and_the_run_goes_on",
                "test_restore_many.py::test_rows_split_over_several_devices_give_the_same",
                "test_finetune.py::test_the_recipe_runs_from_the_command_line"}
SLOW_MODULES = {"test_tpu_compile.py", "test_notebook.py", "test_vocoder_training.py"}
SLOW = {"test_train_step.py::test_each_architecture_learns_a_fixed_set",
        "test_train_step.py::test_bf16_step_keeps_float32_parameters_and_tracks_float32",
        "test_train_loop.py::test_sigterm_saves_and_exits_cleanly",
        "test_train_loop.py::test_stopped_and_resumed_run_equals_uninterrupted",
        "test_train_loop.py::test_command_line_overrides_reach_the_run",
        "test_demo_and_metrics.py::test_demo_without_weights_trains_the_tiny_model_and_restores",
        "test_restore.py::test_bucketed_analysis_equals_unpadded",
        "test_finetune.py::test_the_recipe_runs_from_the_command_line",
        "test_finetune.py::test_starting_weights_from_a_folder_or_a_run",
        "test_finetune.py::test_finetuning_beats_its_start_and_training_from_scratch"}


def pytest_configure(config):
    for name, what in (("parity", "compares with the original package (PyTorch)"),
                       ("multiprocess", "starts several processes or simulated devices"),
                       ("slow", "takes about half a minute or more")):
        config.addinivalue_line("markers", f"{name}: {what}")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable
    for item in items:
        test = f"{item.path.name}::{item.originalname}"
        if PARITY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.parity)
        if test in MULTIPROCESS:
            item.add_marker(pytest.mark.multiprocess)
        if item.path.name in SLOW_MODULES or test in SLOW or test in MULTIPROCESS:
            item.add_marker(pytest.mark.slow)

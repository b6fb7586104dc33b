import os
import pathlib
import sys

import pytest

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

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vf_jax import compilation  # noqa: E402

compilation.enable_compilation_cache()


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """The original package with seeded random weights, and its checkpoint files."""
    import oracle as oracle_lib
    home_before = os.environ.get("HOME")
    home = tmp_path_factory.mktemp("oracle_home")
    original, vf_path, voc_path = oracle_lib.make_oracle(home)
    if home_before is not None:
        os.environ["HOME"] = home_before
    return original, vf_path, voc_path


@pytest.fixture(scope="session")
def converted(oracle):
    """Our variables converted from the oracle's checkpoint files."""
    from vf_jax import convert
    _, vf_path, voc_path = oracle
    variables, report, provenance = convert.convert(vf_path, voc_path)
    return variables, report


@pytest.fixture(scope="session")
def weights_dir(converted, tmp_path_factory):
    """A weights folder written from the oracle's checkpoints."""
    from vf_jax import weights
    variables, report = converted
    path = tmp_path_factory.mktemp("weights") / "voicefixer"
    weights.save(str(path), variables, weights.describe("released", {}, report))
    return str(path)

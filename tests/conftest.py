import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


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

"""XLA options per platform and program (:mod:`vf_jax.compilation`): what
each platform gets, the switches that give XLA's defaults back, and a bad
setting refused in one line."""

import jax
import numpy as np
import pytest

from vf_jax import compilation
from vf_jax.errors import UserError


@pytest.fixture(autouse=True)
def no_switches(monkeypatch):
    monkeypatch.delenv(compilation.XLA_DEFAULTS_ENV, raising=False)
    monkeypatch.delenv(compilation.TPU_COMPILE_ENV, raising=False)


def test_a_tpu_program_takes_the_fast_mode_by_its_own_choice_or_the_variable(monkeypatch):
    assert compilation.options_for("tpu") == compilation.TPU_OPTIONS
    assert compilation.options_for("tpu", fast_compile=False) is None
    monkeypatch.setenv(compilation.TPU_COMPILE_ENV, "full")
    assert compilation.options_for("tpu") is None
    monkeypatch.setenv(compilation.TPU_COMPILE_ENV, "Fast")
    assert compilation.options_for("tpu", fast_compile=False) == compilation.TPU_OPTIONS
    monkeypatch.setenv(compilation.TPU_COMPILE_ENV, "quick")
    with pytest.raises(UserError, match="VF_JAX_TPU_COMPILE must be one of auto, fast, full"):
        compilation.options_for("tpu")
    with pytest.raises(UserError, match="VF_JAX_TPU_COMPILE"):     # a typo shows anywhere
        compilation.compiler_options()


def test_xla_defaults_everywhere_when_asked(monkeypatch):
    assert compilation.options_for("cpu") == compilation.CPU_OPTIONS
    assert compilation.options_for("gpu") is None        # not measured on a GPU yet
    with compilation.xla_defaults():
        assert compilation.options_for("tpu") is None
        assert compilation.options_for("cpu") is None
        assert compilation.compiler_options() is None
    assert compilation.options_for("cpu") == compilation.CPU_OPTIONS
    monkeypatch.setenv(compilation.XLA_DEFAULTS_ENV, "1")
    assert compilation.options_for("tpu") is None
    assert compilation.compiler_options() is None


def test_the_options_compute_what_xla_defaults_compute():
    """On this CPU, a convolution jitted with vf_jax's options (YNNPACK's
    fusions off) against plain ``jax.jit``, and the options XLA accepts."""
    assert jax.default_backend() == "cpu"
    assert compilation.compiler_options() == compilation.CPU_OPTIONS
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 48, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ours = compilation.jit(conv)(x, w)
    plain = jax.jit(conv)(x, w)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(plain), rtol=1e-4, atol=1e-4)

"""Programs compiled ahead of time for a TPU v5e chip (libtpu, no TPU needed):
they fit its HBM and the compiler's cost model prices them. JAX's runtime
stays on the CPU (``conftest.py``)."""

import numpy as np
import pytest

from vf_jax import aot, degradations, programs

V5E_HBM = 16e9


@pytest.fixture(scope="module")
def chip():
    """One chip of a v5e 2x2 topology."""
    return aot.topology_mesh("v5e:2x2", chips=1)


def test_fft_filters_fit_only_at_the_tpu_lengths(chip):
    """A TPU lowers an FFT whose length is not a power of two as a dense
    DFT: 1 s signals filtered at the CPU's fast length (66,150 samples) need
    hundreds of GB; at the TPU's (131,072) they fit and are priced."""
    x = aot.shape_of(np.zeros((8, 44100), np.float32), chip, sharded=True)
    lowpass = lambda v: degradations.apply_biquad(v, "lowpass", 4000.0)
    cpu_lengths = aot.compile_program(lowpass, (x,), family="default")
    tpu_lengths = aot.compile_program(lowpass, (x,))
    assert not cpu_lengths.fits and "HBM" in cpu_lengths.error
    assert tpu_lengths.fits and tpu_lengths.hbm_bytes < 1e9
    assert tpu_lengths.unmodelled_ops == 0 and tpu_lengths.estimated_seconds > 0


def test_analysis_training_step_fits_a_v5e_chip(chip):
    """The whole VF-DNN step — degradations (every FFT at its real length for
    1 s crops), front end, network, loss, AMSGrad — for batch 2 per chip."""
    program = programs.analysis_train("dnn", batch_per_chip=2, crop_seconds=1.0)
    report = program.compile(chip)
    assert report.fits, report.error
    assert report.hbm_bytes < V5E_HBM
    assert report.flops > 1e9
    assert report.modelled_seconds > 0


SMALL_VOCODER = (("channels", 32), ("cond_channels", 16), ("resstack_depth", 2))


def _tiny_vocoder_config():
    from vf_jax import vocoder_training
    return vocoder_training.tiny_config()


@pytest.mark.parametrize("name, build", [
    ("VF-BiGRU training step, bf16",
     lambda: programs.analysis_train("bigru", batch_per_chip=2, crop_seconds=1.0, bf16=True)),
    ("VF-DNN validation step", lambda: programs.analysis_eval("dnn", 2, 1.0)),
    ("restoration, released analysis and published vocoder, mode 0",
     lambda: programs.restore(0, 1, 1.0)),
    ("restoration, mode 1", lambda: programs.restore(1, 1, 1.0, "dnn", SMALL_VOCODER)),
    ("restoration, mode 2", lambda: programs.restore(2, 1, 1.0, "dnn", SMALL_VOCODER)),
    ("restoration, bf16, a batch of windows",
     lambda: programs.restore(0, 2, 1.0, "dnn", SMALL_VOCODER, bf16=True)),
    ("vocoder generator-only step",
     lambda: programs.vocoder_train(False, 1, config=_tiny_vocoder_config())),
    ("vocoder GAN step", lambda: programs.vocoder_train(True, 1, config=_tiny_vocoder_config())),
])
def test_programs_fit_a_v5e_chip(chip, name, build):
    """The other programs users run, at reduced sizes that keep their
    lowering (1 s crops and windows; the published networks where compile
    time allows, the small or tiny configs elsewhere)."""
    report = build().compile(chip)
    assert report.fits, f"{name}: {report.error}"
    assert report.hbm_bytes < V5E_HBM
    assert report.flops > 0 and report.modelled_seconds > 0


def test_model_flops_count_the_program_as_written():
    """``aot.model_flops``: a matrix product's 2 m n k multiply-adds, split
    over the chips its batch is sharded on, whatever the TPU would add."""
    mesh = aot.topology_mesh("v5e:2x2", chips=2)
    a = aot.shape_of(np.zeros((64, 96), np.float32), mesh, sharded=True)
    b = aot.shape_of(np.zeros((96, 80), np.float32), mesh)
    assert aot.model_flops(lambda x, y: x @ y, (a, b)) == 2 * 64 * 96 * 80 / 2

"""Programs compiled ahead of time for a TPU v5e chip (libtpu, no TPU needed):
they fit its HBM and the compiler's cost model prices them. JAX's runtime
stays on the CPU (``conftest.py``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vf_jax.aot import compiler, programs
from vf_jax.audio import filters

pytestmark = pytest.mark.slow        # the whole module takes minutes

V5E_HBM = 16e9


@pytest.fixture(scope="module")
def chip():
    """One chip of a v5e 2x2 topology."""
    return compiler.topology_mesh("v5e:2x2", chips=1)


def test_fft_filters_fit_only_at_the_tpu_lengths(chip):
    """A TPU lowers an FFT whose length is not a power of two as a dense
    DFT: 1 s signals filtered at the CPU's fast length (66,150 samples) need
    hundreds of GB; at the TPU's (131,072) they fit and are priced."""
    x = compiler.shape_of(np.zeros((8, 44100), np.float32), chip, sharded=True)
    lowpass = lambda v: filters.apply_biquad(v, "lowpass", 4000.0)
    cpu_lengths = compiler.compile_program(lowpass, (x,), family="default")
    tpu_lengths = compiler.compile_program(lowpass, (x,))
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


def _tiny_vocoder_config(one_of_each: bool = False):
    """configs/tfgan_tiny.py; ``one_of_each``: one discriminator of each kind
    (a waveform scale, a spectrogram resolution, the sub-band one), which keeps
    every kind's lowering at a third of the compile time."""
    from vf_jax import config_files
    c = config_files.get_config("tfgan_tiny")
    if one_of_each:
        c.discriminators.update({"scales": 1, "resolutions": ((512, 50, 240),)})
    return c


def _on_pairs(model: str, bf16: bool = False):
    """The training step on a batch of pairs: network, loss and optimiser
    without the degradations, which test_analysis_training_step_fits_a_v5e_chip
    compiles (each of their FFTs costs seconds to compile for a TPU)."""
    config = programs.analysis_config(model, 1.0, bf16)
    config.dataset, config.paired_fraction = "paired", 1.0
    return programs.analysis_train(model, 2, 1.0, bf16, config=config)


@pytest.mark.parametrize("name, build", [
    ("VF-BiGRU training step on pairs, bf16", lambda: _on_pairs("bigru", bf16=True)),
    ("VF-DNN validation step on pairs", lambda: programs.analysis_eval("dnn", 2, 1.0, pairs=True)),
    # Pairs only: with a simulated share the step adds the training step's
    # degradations, compiled by test_analysis_training_step_fits_a_v5e_chip.
    ("VF-DNN fine-tuning step, pairs, a frozen layer",
     lambda: programs.analysis_finetune("dnn", 2, 1.0, freeze="dense0", paired_fraction=1.0)),
    # A folder's rows: the released analysis (its ResUNet's repeated blocks
    # looped), the vocoder's looped stacks, mode 1's removal on padded rows.
    ("restoration rows, released analysis, mode 1",
     lambda: programs.restore_rows(2, 1.0, "released", SMALL_VOCODER, mode=1)),
    ("restoration, mode 2", lambda: programs.restore(2, 1, 1.0, "dnn", SMALL_VOCODER)),
    ("restoration, mode 1, bf16, a batch of windows",
     lambda: programs.restore(1, 2, 1.0, "dnn", SMALL_VOCODER, bf16=True)),
    ("vocoder generator-only step",
     lambda: programs.vocoder_train(False, 1, config=_tiny_vocoder_config())),
    ("vocoder GAN step",
     lambda: programs.vocoder_train(True, 1, config=_tiny_vocoder_config(one_of_each=True))),
])
def test_programs_fit_a_v5e_chip(chip, name, build):
    """The other programs users run, at reduced sizes that keep their
    lowering (1 s crops and windows; the published networks where compile
    time allows, the small or tiny configs elsewhere)."""
    report = build().compile(chip)
    assert report.fits, f"{name}: {report.error}"
    assert report.hbm_bytes < V5E_HBM
    assert report.flops > 0 and report.modelled_seconds > 0


def test_roofline_from_the_compiled_memory_traffic(chip):
    """``Report.roofline``: an elementwise sum reads two arrays and writes
    one (12 bytes per float32 element for one FLOP: far below v5e's ridge of
    197e12 / 819e9 = 240 FLOP/byte); a 2048^3 matrix product does 2 n^3 FLOPs
    over at least 3 n^2 x 4 bytes (at most 341 FLOP/byte; the compiler's
    tiles read the operands more than once)."""
    v5e = compiler.CHIPS["TPU v5 lite"]
    n = 1 << 20
    x = compiler.shape_of(np.zeros((8, n // 8), np.float32), chip)
    add = compiler.compile_program(lambda a, b: a + b, (x, x))
    assert 0.9 * 12 * n < add.bytes_accessed < 1.1 * 12 * n
    assert add.roofline(n, v5e) == pytest.approx(1 / 12 / 240.5, rel=0.1)
    m = compiler.shape_of(np.zeros((2048, 2048), np.float32), chip)
    product = compiler.compile_program(lambda a, b: a @ b, (m, m))
    assert product.bytes_accessed >= 3 * 2048 ** 2 * 4
    assert product.roofline(2 * 2048 ** 3, v5e) > 100 * add.roofline(n, v5e)
    assert product.roofline(None, v5e) is None


def test_rematerialised_discriminators_need_less_hbm(chip):
    """The vocoder's GAN step on a TPU recomputes the discriminators' hidden
    layers in its backward pass ("auto" remat): their update needs less HBM
    than storing them. A spectrogram discriminator, batch 8 x 0.25 s."""
    from vf_jax.models import discriminators
    from vf_jax.training.vocoder import losses as vocoder_losses
    config = discriminators.config(scales=0, resolutions=((512, 50, 240),), subbands_=0,
                                   spectrogram_channels=8)
    wav = np.zeros((8, 11025), np.float32)
    hbm = {}
    for remat in (False, True):
        module = discriminators.Discriminators(config, remat=remat)
        params = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), wav))

        def update(p, real, fake):
            return jax.grad(lambda p: vocoder_losses.discriminator_loss(
                module.apply(p, real), module.apply(p, fake)))(p)
        report = compiler.compile_program(update, (compiler.shape_of(params, chip),
                                                   compiler.shape_of(wav, chip, sharded=True),
                                                   compiler.shape_of(wav, chip, sharded=True)))
        assert report.fits, report.error
        hbm[remat] = report.hbm_bytes
    assert hbm[True] < 0.9 * hbm[False], hbm


def test_model_flops_count_the_program_as_written():
    """``compiler.model_flops``: a matrix product's 2 m n k multiply-adds, split
    over the chips its batch is sharded on, whatever the TPU would add."""
    mesh = compiler.topology_mesh("v5e:2x2", chips=2)
    a = compiler.shape_of(np.zeros((64, 96), np.float32), mesh, sharded=True)
    b = compiler.shape_of(np.zeros((96, 80), np.float32), mesh)
    assert compiler.model_flops(lambda x, y: x @ y, (a, b)) == 2 * 64 * 96 * 80 / 2


def test_a_tpu_traces_the_repeated_layers_as_loops(chip):
    """In the TPU's forms a folder's rows program runs each vocoder residual
    stack and each unfolded ResUNet level's repeated blocks as a loop (a
    ``while`` in the lowered program; the GRUs' time loops are there either
    way): 4 stacks, 5 encoder and 5 decoder levels. Lowered only."""
    from vf_jax import backends
    program = programs.restore_rows(2, 1.0, "released", SMALL_VOCODER)

    def loops(looped):
        with backends.force("tpu"), backends.force_loops(looped):
            lowered = jax.jit(lambda *a: program.fn(*a)).lower(*program.arguments(chip))
        return lowered.as_text().count("stablehlo.while")
    assert loops(True) - loops(False) == 4 + 5 + 5


def test_the_analysis_validation_step_stays_unrolled_on_a_tpu(chip):
    """The VF-UNet's validation step keeps its ResUNet unrolled in the TPU's
    forms, as the training step does (its estimate was lower so): told to
    loop or not, its lowered program has the same ``while`` loops (the
    degradations'), while the same network alone loops its repeated blocks
    on a TPU. Lowered only."""
    from vf_jax import backends
    from vf_jax.models import registry
    program = programs.analysis_eval("unet", 2, 1.0)
    net = registry.analysis_module("unet")
    variables = compiler.shape_of(registry.analysis_template("unet"), chip)
    mel = compiler.shape_of(np.zeros((2, 128, 128), np.float32), chip, sharded=True)

    def loops(fn, args, looped):
        with backends.force("tpu"), backends.force_loops(looped):
            lowered = jax.jit(lambda *a: fn(*a)).lower(*args)
        return lowered.as_text().count("stablehlo.while")
    network = lambda v, m: net.apply(v, m)
    assert loops(network, (variables, mel), True) > loops(network, (variables, mel), False)
    step = program.arguments(chip)
    assert loops(program.fn, step, True) == loops(program.fn, step, False)


def test_programs_take_the_tpu_compilers_fast_mode_unless_they_opt_out(chip, monkeypatch):
    """vf_jax's options reach the TPU compiler (an option it does not know is
    refused), and the fast mode compiles another executable than XLA's
    defaults (it moves other bytes); a program built without
    ``fast_compile``, or any under ``VF_JAX_TPU_COMPILE=full``, compiles
    exactly as under XLA's defaults. Three dilated convolutions, 4 x 2048 x 32."""
    from vf_jax import compilation
    x = compiler.shape_of(np.zeros((4, 2048, 32), np.float32), chip, sharded=True)
    w = compiler.shape_of(np.zeros((3, 32, 32), np.float32), chip)

    def stack(x, w):
        for d in (1, 3, 9):
            x = x + jnp.tanh(jax.lax.conv_general_dilated(
                x, w, (1,), "SAME", rhs_dilation=(d,), dimension_numbers=("NWC", "WIO", "NWC")))
        return x
    fast = compiler.compile_program(stack, (x, w))
    full = compiler.compile_program(stack, (x, w), fast_compile=False)
    with compilation.xla_defaults():
        defaults = compiler.compile_program(stack, (x, w))
    monkeypatch.setenv(compilation.TPU_COMPILE_ENV, "full")
    forced = compiler.compile_program(stack, (x, w))
    monkeypatch.delenv(compilation.TPU_COMPILE_ENV)
    assert fast.fits and full.fits
    traffic = lambda r: (r.bytes_accessed, r.estimated_seconds)
    assert traffic(full) == traffic(defaults) == traffic(forced)
    assert traffic(fast) != traffic(defaults)
    monkeypatch.setattr(compilation, "TPU_OPTIONS", {"no_such_option": 1})
    refused = compiler.compile_program(stack, (x, w))
    assert not refused.fits and "no_such_option" in refused.error


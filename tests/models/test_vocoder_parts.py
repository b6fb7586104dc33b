"""The vocoder's training parts: weight norm, PQMF, discriminators, losses."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from vf_jax.audio import subbands
from vf_jax.compilation import jit_init
from vf_jax.models import discriminators, weight_norm
from vf_jax.models.vocoder import TFGANGenerator
from vf_jax.training.vocoder import losses as vocoder_losses

TINY = dict(channels=32, cond_channels=16, resstack_depth=2)


def test_weight_norm_matches_pytorch():
    """g v / ||v|| with PyTorch's norm axes: per output channel for Conv1d,
    per input channel for ConvTranspose1d."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for transpose, g_axes in ((False, (0, 1)), (True, (0, 2))):
        conv = (torch.nn.ConvTranspose1d(6, 4, 5) if transpose else torch.nn.Conv1d(6, 4, 5))
        conv = torch.nn.utils.weight_norm(conv)
        v = rng.standard_normal(tuple(conv.weight_v.shape)).astype(np.float32)
        with torch.no_grad():
            conv.weight_v.copy_(torch.from_numpy(v))
            conv.weight_g.copy_(torch.from_numpy(np.abs(rng.standard_normal(
                tuple(conv.weight_g.shape))).astype(np.float32)))
        conv(torch.zeros(1, 6, 8))   # recomputes .weight
        ref = conv.weight.detach().numpy()                      # (out,in,k) or (in,out,k)
        # Our layout (k, in, out); g keeps size 1 on the normalised axes.
        v_ours = np.transpose(v, (2, 0, 1) if transpose else (2, 1, 0))
        g = conv.weight_g.detach().numpy().reshape(-1)
        g_ours = g.reshape((1, -1, 1) if transpose else (1, 1, -1))
        kernel = weight_norm.fold({"layer": {"g": g_ours, "v": v_ours}})["layer"]["kernel"]
        ours = np.transpose(np.asarray(kernel), (1, 2, 0) if transpose else (2, 1, 0))
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_weight_normed_and_folded_generators_agree():
    """One module, one tree: the weight-normed generator, its folded
    parameters in the plain one, and unfold(fold) all give the same waveform."""
    wn = TFGANGenerator(weight_norm=True, **TINY)
    plain = TFGANGenerator(**TINY)
    feats = jax.random.uniform(jax.random.PRNGKey(1), (2, 9, 128), minval=-4, maxval=4)
    params = jit_init(wn.init)(jax.random.PRNGKey(0), feats)["params"]
    # Move g away from ||v|| so the norm matters.
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 1.3 if p[-1].key == "g" else x, params)
    assert weight_norm.is_weight_normed(params)
    folded = weight_norm.fold(params)
    assert not weight_norm.is_weight_normed(folded)
    template = jax.eval_shape(lambda: plain.init(jax.random.PRNGKey(0), feats))["params"]
    assert jax.tree_util.tree_structure(folded) == jax.tree_util.tree_structure(template)
    run_wn = jax.jit(lambda p: wn.apply({"params": p}, feats))
    y_wn = run_wn(params)
    y_plain = jax.jit(lambda p: plain.apply({"params": p}, feats))(folded)
    assert y_wn.shape == (2, 9 * 441)
    np.testing.assert_allclose(y_plain, y_wn, atol=1e-5)
    again = weight_norm.unfold(folded, params)
    np.testing.assert_allclose(run_wn(again), y_wn, atol=1e-5)


def test_published_generator_unfolds_for_fine_tuning(converted):
    """The converted published vocoder, unfolded to (g, v), computes what the
    folded one does."""
    variables, _ = converted
    folded = variables["vocoder"]["params"]
    feats = jax.random.uniform(jax.random.PRNGKey(2), (1, 6, 128), minval=-4, maxval=4)
    wn = TFGANGenerator(weight_norm=True)
    template = jax.eval_shape(lambda: wn.init(jax.random.PRNGKey(0), feats))["params"]
    params = weight_norm.unfold(folded, template)
    assert weight_norm.param_count(params) == weight_norm.param_count(folded) + sum(
        int(np.prod(g.shape)) for path, g in jax.tree_util.tree_flatten_with_path(params)[0]
        if path[-1].key == "g")
    ref = jax.jit(lambda p: TFGANGenerator().apply({"params": p}, feats))(folded)
    ours = jax.jit(lambda p: wn.apply({"params": p}, feats))(params)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


@pytest.mark.parametrize("bands", [2, 4, 8])
def test_pqmf_reconstructs_and_separates(bands):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8192)).astype(np.float32)
    y = np.asarray(subbands.synthesise(subbands.analyse(jnp.asarray(x), bands)))
    inner = slice(200, -200)
    snr = 10 * np.log10(np.sum(x[:, inner] ** 2) / np.sum((y - x)[:, inner] ** 2))
    assert snr > 45, snr
    # A tone in the middle of band k comes out (almost) only in sub-band k.
    for k in range(bands):
        freq = (k + 0.5) / bands * 0.5            # cycles per sample, band centre
        tone = np.sin(2 * np.pi * freq * np.arange(8192)).astype(np.float32)
        energy = np.sum(np.asarray(subbands.analyse(jnp.asarray(tone[None]), bands))[0, 50:-50]
                        ** 2, axis=0)
        assert np.argmax(energy) == k and energy[k] > 0.99 * energy.sum()


def test_pqmf_design_finds_the_four_band_cutoff():
    """Multi-band MelGAN's published cut-off for 4 bands, 62 taps, beta 9 is 0.142."""
    assert abs(subbands.design_cutoff(4) - 0.142) < 2e-3


def test_discriminator_outputs():
    cfg = discriminators.config(waveform_channels=4, max_channels=32, spectrogram_channels=4)
    disc = discriminators.Discriminators(cfg)
    wav = jax.random.normal(jax.random.PRNGKey(0), (2, 8192)) * 0.1
    params = jit_init(disc.init)(jax.random.PRNGKey(1), wav)
    outs = jax.jit(disc.apply)(params, wav)
    assert len(outs) == 3 + 3 + 1
    frames = [logits.shape[1] for _, logits in outs[:3]]
    assert frames == [8192 // 256, 4096 // 256, 2048 // 256]   # pooled x2 per scale
    for feats, logits in outs:
        assert logits.shape[0] == 2 and logits.shape[-1] == 1 and len(feats) >= 4
    # Every discriminator's convolutions are weight-normed.
    assert all(k in ("g", "v", "bias") for path, _ in
               jax.tree_util.tree_flatten_with_path(params)[0] for k in [path[-1].key])


def test_average_pool_matches_pytorch_count_exclude_pad():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 37, 3)).astype(np.float32)
    ref = torch.nn.AvgPool1d(4, 2, 1, count_include_pad=False)(
        torch.from_numpy(x.transpose(0, 2, 1))).numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(discriminators.average_pool(jnp.asarray(x)), ref, atol=1e-6)


def test_stft_losses_against_librosa_and_closed_forms():
    rng = np.random.default_rng(0)
    real = (0.3 * rng.standard_normal((2, 6000))).astype(np.float32)
    fake = (0.3 * rng.standard_normal((2, 6000))).astype(np.float32)
    res = ((1024, 120, 600), (512, 50, 240))
    sc, mag = vocoder_losses.multi_resolution_stft_loss(real, fake, res)
    ref_sc, ref_mag = [], []
    for n_fft, hop, win in res:
        m = lambda x: np.sqrt(np.abs(librosa.stft(
            x, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode="reflect")) ** 2 + 1e-7)
        s, s_hat = m(real), m(fake)
        ref_sc.append(np.linalg.norm(s - s_hat) / np.linalg.norm(s))
        ref_mag.append(np.mean(np.abs(np.log(s) - np.log(s_hat))))
    assert abs(float(sc) - np.mean(ref_sc)) < 1e-4 * np.mean(ref_sc)
    assert abs(float(mag) - np.mean(ref_mag)) < 1e-4 * np.mean(ref_mag)
    # A gain g: SC = |1 - g|, log magnitude = |log g|, mel L1 = |log10 g|.
    sc, mag = vocoder_losses.multi_resolution_stft_loss(real, 0.5 * real, res)
    assert abs(float(sc) - 0.5) < 1e-5 and abs(float(mag) - np.log(2)) < 1e-4
    assert abs(float(vocoder_losses.mel_l1(real, 0.5 * real)) - np.log10(2)) < 1e-4


def test_gan_losses_closed_forms():
    ones, zeros = jnp.ones((2, 5, 1)), jnp.zeros((2, 5, 1))
    feats = [jnp.full((2, 5, 3), 2.0), jnp.full((2, 3, 3), -1.0)]
    real = [(feats, ones)] * 2
    fake = [([f + 0.5 for f in feats], zeros)] * 2
    assert float(vocoder_losses.discriminator_loss(real, fake)) == 0.0   # perfect D
    assert float(vocoder_losses.adversarial_loss(fake)) == 1.0
    assert float(vocoder_losses.adversarial_loss(real)) == 0.0
    assert abs(float(vocoder_losses.feature_matching_loss(real, fake)) - 0.5) < 1e-7
    half = [(feats, jnp.full((2, 5, 1), 0.5))]
    assert abs(float(vocoder_losses.discriminator_loss(half, half)) - 0.5) < 1e-7


def test_bf16_generator_follows_float32():
    """``bf16=True`` runs the generator in bfloat16 on float32 parameters and
    returns float32 audio close to the float32 computation."""
    from vf_jax import config_files
    from vf_jax.training.vocoder import step as vts
    config = config_files.get_config("tfgan_tiny")
    config.generator.update(TINY)
    params = jit_init(vts.generator_module(config).init)(
        jax.random.PRNGKey(0), jnp.zeros((1, 8, 128)))["params"]
    speech = 0.3 * jnp.sin(jnp.arange(4410.0) / 7.0)[None] * jnp.linspace(0, 1, 4410)
    full = jax.jit(vts.make_generate(config))(params, speech)
    config.bf16 = True
    half = jax.jit(vts.make_generate(config))(params, speech)
    assert full.dtype == half.dtype == jnp.float32 and half.shape == speech.shape
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
    err = float(jnp.linalg.norm(half - full) / jnp.linalg.norm(full))
    assert 0 < err < 0.05, err


def test_tpu_forms_of_the_generator_and_discriminators_agree():
    """Generator (plain and weight-normed, bucket-padded with ``valid``) and
    discriminators traced in the TPU's forms (``vf_jax.backends``) give what
    the default forms give, on CPU."""
    from vf_jax import backends
    feats = jax.random.uniform(jax.random.PRNGKey(1), (2, 12, 128), minval=-4, maxval=4)
    valid = jnp.array([12, 9])
    wn = TFGANGenerator(weight_norm=True, **TINY)
    params = jit_init(wn.init)(jax.random.PRNGKey(0), feats)["params"]
    discs = discriminators.Discriminators(discriminators.config(
        scales=2, resolutions=((512, 50, 240),), waveform_channels=4, max_channels=32,
        spectrogram_channels=8))
    wav = 0.3 * jnp.sin(jnp.arange(4096) * 0.05)[None] * jnp.ones((2, 1))
    d_params = jit_init(discs.init)(jax.random.PRNGKey(2), wav)

    def run():      # fresh functions: jax.jit keeps one trace per function
        return (jax.jit(lambda p: wn.apply({"params": p}, feats, valid))(params),
                jax.jit(lambda p, w: discs.apply(p, w))(d_params, wav))
    expected = run()
    with backends.force("tpu"):
        got = run()
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("weight_norm, remat", [(False, False), (True, True)])
def test_looped_residual_stacks_keep_the_variables_and_the_waveform(weight_norm, remat):
    """A TPU runs each residual stack as one loop body over its layers'
    weights (``vocoder.ResStack``, ``vf_jax.backends.loops``): the same
    variables as unrolled (names, shapes, initial values), the same
    waveform and gradients, in the default and the TPU's forms, padded to a
    bucket with ``valid``."""
    from vf_jax import backends
    feats = jax.random.uniform(jax.random.PRNGKey(1), (2, 12, 128), minval=-4, maxval=4)
    valid = jnp.array([12, 9])
    generator = TFGANGenerator(weight_norm=weight_norm, remat=remat,
                               **{**TINY, "resstack_depth": 4})
    variables = jax.jit(generator.init)(jax.random.PRNGKey(0), feats)
    with backends.force_loops(True):
        looped = jax.jit(lambda k, f: generator.init(k, f))(jax.random.PRNGKey(0), feats)
    for a, b in zip(jax.tree_util.tree_leaves_with_path(variables),
                    jax.tree_util.tree_leaves_with_path(looped)):
        assert a[0] == b[0]
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-9)
    loss = lambda p: jnp.sum(jnp.sin(generator.apply(p, feats, valid)))
    expected = jax.jit(jax.value_and_grad(loss))(variables)
    for family in backends.FAMILIES:
        with backends.force(family), backends.force_loops(True):
            got = jax.jit(jax.value_and_grad(lambda p: loss(p)))(variables)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))
    # Training keeps the stacks unrolled (measured: looped, twice the HBM).
    from vf_jax import config_files
    from vf_jax.training.vocoder import step as vts
    assert vts.generator_module(config_files.get_config("tfgan_tiny")).looped is False


def test_reflection_at_each_rows_end_is_numpys():
    """The vocoder's end reflection (shifts and selects, no gather): every
    position up to ``valid + pad`` is ``numpy.pad(mode="reflect")`` of the
    row cut at its ``valid`` frames, zeros after; without ``valid``, numpy's."""
    from vf_jax.models.vocoder import reflect_pad
    x = np.random.default_rng(0).standard_normal((3, 40, 5)).astype(np.float32)
    valid = np.array([40, 17, 4])
    got = np.asarray(reflect_pad(jnp.asarray(x), 3, jnp.asarray(valid)))
    assert got.shape == (3, 46, 5)
    for row, v in enumerate(valid):
        ref = np.pad(x[row, :v], ((3, 3), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(got[row, :v + 6], ref)
        assert not got[row, v + 6:].any()
    np.testing.assert_array_equal(np.asarray(reflect_pad(jnp.asarray(x), 3)),
                                  np.pad(x, ((0, 0), (3, 3), (0, 0)), mode="reflect"))

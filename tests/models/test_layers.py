"""Blocks against PyTorch's own layers (random weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from vf_jax.models import blocks, convolution, masks, normalization, recurrent


def test_bigru_matches_torch_gru():
    torch.manual_seed(0)
    gru = torch.nn.GRU(12, 8, num_layers=2, bidirectional=True, batch_first=True)
    for p in gru.parameters():     # non-zero biases, so b_hn placement matters
        torch.nn.init.uniform_(p, -0.5, 0.5)
    x = np.random.default_rng(0).standard_normal((3, 17, 12)).astype(np.float32)
    ref = gru(torch.tensor(x))[0].detach().numpy()
    params = {}
    for layer in range(2):
        for suffix, name in (("", f"l{layer}"), ("_reverse", f"l{layer}_reverse")):
            get = lambda n: getattr(gru, f"{n}_l{layer}{suffix}").detach().numpy()
            params[name] = {"kernel_ih": get("weight_ih").T, "kernel_hh": get("weight_hh").T,
                            "bias_ih": get("bias_ih"), "bias_hh": get("bias_hh")}
    ours = recurrent.BiGRU(8, 2).apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_bigru_padding_with_valid_is_exact():
    model = recurrent.BiGRU(8, 2)
    x = np.random.default_rng(1).standard_normal((2, 20, 6)).astype(np.float32)
    v = model.init(jax.random.PRNGKey(0), jnp.asarray(x))
    exact = model.apply(v, jnp.asarray(x[:, :13]))
    padded = np.concatenate([x[:, :13], 7 * np.ones((2, 11, 6), np.float32)], axis=1)
    ours = model.apply(v, jnp.asarray(padded), jnp.array([13, 13]))
    np.testing.assert_allclose(ours[:, :13], exact, atol=1e-6)


@pytest.mark.parametrize("stride,kernel,padding", [(7, 14, 4), (3, 6, 2), (2, 4, 1)])
def test_polyphase_conv_transpose_matches_torch(stride, kernel, padding):
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((2, 9, 5)).astype(np.float32)
    w = rng.standard_normal((5, 4, kernel)).astype(np.float32)
    out_pad = stride - (kernel - 2 * padding)
    ref = torch.nn.functional.conv_transpose1d(
        torch.tensor(x).transpose(1, 2), torch.tensor(w), stride=stride,
        padding=padding, output_padding=out_pad).transpose(1, 2).numpy()
    ours = convolution.conv_transpose1d_polyphase(jnp.asarray(x), jnp.transpose(w, (2, 0, 1)),
                                             stride, padding)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_conv_transpose2d_matches_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)        # (B, T, F, C)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)        # (in, out, kh, kw)
    ref = torch.nn.functional.conv_transpose2d(
        torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(w), stride=2).permute(0, 2, 3, 1)
    ours = convolution.conv_transpose(jnp.asarray(x), jnp.transpose(w, (2, 3, 0, 1)), (2, 2),
                                      (0, 0))
    assert ours.shape == (2, 11, 9, 3)
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_scalar_batchnorm_matches_batchnorm2d_of_one_channel(train):
    bn = torch.nn.BatchNorm2d(1)
    with torch.no_grad():
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(2.0)
        bn.weight.fill_(1.5)
        bn.bias.fill_(-0.2)
    bn.train(train)
    x = np.random.default_rng(4).standard_normal((3, 7, 10)).astype(np.float32) * 3 + 1
    ref = bn(torch.tensor(x)[:, None])[:, 0].detach().numpy()
    variables = {"params": {"bn": {"scale": np.array([1.5], np.float32),
                                   "bias": np.array([-0.2], np.float32)}},
                 "batch_stats": {"bn": {"mean": np.array([0.3], np.float32),
                                        "var": np.array([2.0], np.float32)}}}
    ours, _ = normalization.ScalarBatchNorm().apply(variables, jnp.asarray(x), train,
                                            mutable=["batch_stats"])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_mask_frames():
    x = jnp.ones((2, 5, 3))
    m = masks.mask_frames(x, jnp.array([2, 4]))
    np.testing.assert_array_equal(m[:, :, 0], [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])


@pytest.mark.parametrize("x_shape, k_shape, strides, padding, groups", [
    ((2, 101, 8), (41, 2, 12), (4,), [(20, 20)], 4),        # MelGAN's grouped stride-4
    ((1, 37, 6), (5, 3, 4), (3,), [(1, 3)], 2),             # uneven padding, odd length
    ((1, 37, 6), (5, 6, 4), (3,), [(0, 0)], 1),
    ((2, 30, 33, 3), (3, 9, 3, 5), (1, 2), [(1, 1), (4, 4)], 1),   # spectrogram layer
    ((2, 30, 34, 4), (3, 9, 2, 6), (2, 2), [(1, 0), (4, 4)], 2),
])
def test_strided_conv_equals_xla_conv_and_its_gradients(x_shape, k_shape, strides, padding,
                                                        groups):
    """Polyphase form against ``lax.conv_general_dilated``: values and both gradients."""
    from jax import lax
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(k_shape), jnp.float32)
    sp = "HW"[:len(strides)]
    ref = lambda a, b: lax.conv_general_dilated(a, b, strides, padding, feature_group_count=groups,
                                                dimension_numbers=(f"N{sp}C", f"{sp}IO", f"N{sp}C"))
    ours = lambda a, b: convolution.strided_conv(a, b, strides, padding, groups)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    loss = lambda conv: jax.grad(lambda a, b: jnp.sum(jnp.sin(conv(a, b))), (0, 1))(x, w)
    for a, b in zip(loss(ours), loss(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k, padding, dilation", [(3, (27, 27), 27), (7, (0, 0), 1),
                                                  (4, (-1, 2), 1), (1, (0, 0), 1)])
def test_conv1d_forms_equal_xla_conv_and_their_gradients(k, padding, dilation):
    """The TPU's form of the 1-D convolution (shifted views times the
    kernel as a matrix, ``vf_jax.backends``), run on CPU, against
    ``lax.conv_general_dilated``: values and both gradients."""
    from jax import lax
    rng = np.random.default_rng(k)
    x = jnp.asarray(rng.standard_normal((2, 90, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, 6, 5)), jnp.float32)
    ref = lambda a, b: lax.conv_general_dilated(a, b, (1,), [padding], rhs_dilation=(dilation,),
                                                dimension_numbers=("NHC", "HIO", "NHC"))
    assert_every_form_equals(lambda a, b: convolution.conv1d(a, b, padding, dilation), ref, x, w)


def assert_every_form_equals(conv, ref, x, w):
    """``conv`` traced in every backend's forms (``vf_jax.backends``), run on
    CPU: the values and both gradients of ``sum(sin(conv(x, w)))`` as ``ref``'s."""
    from vf_jax import backends
    loss = lambda f: jax.value_and_grad(lambda a, b: jnp.sum(jnp.sin(f(a, b))), (0, 1))(x, w)
    expected = loss(ref)
    for family in backends.FAMILIES:
        with backends.force(family):
            got = loss(conv)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=family)


@pytest.mark.parametrize("kh, kw", [(3, 3), (1, 3), (1, 1)])
def test_conv2d_forms_equal_xla_conv_and_their_gradients(kh, kw):
    """The TPU's form of the ResUNet's "same" 2-D convolution (shifted views
    side by side times the kernel as one matrix, ``vf_jax.backends``), run on
    CPU, against ``lax.conv_general_dilated``: values and both gradients."""
    from jax import lax
    rng = np.random.default_rng(kh * 10 + kw)
    x = jnp.asarray(rng.standard_normal((2, 11, 9, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((kh, kw, 6, 5)), jnp.float32)
    ref = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), ((kh // 2,) * 2, (kw // 2,) * 2),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert_every_form_equals(convolution.conv2d, ref, x, w)


def test_dilation_as_data_equals_xla_s_dilated_conv_and_its_gradients():
    """The looped residual layers' convolution (``conv1d_dilation_as_data``:
    dilation an array, taps as ``dynamic_slice``\ s of one padded copy)
    against ``lax.conv_general_dilated`` at each dilation, values and both
    gradients, under ``jax.jit`` with the dilation traced."""
    from jax import lax
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 90, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 6, 5)), jnp.float32)
    ours = jax.jit(lambda a, b, d: jax.value_and_grad(
        lambda a, b: jnp.sum(jnp.sin(convolution.conv1d_dilation_as_data(a, b, d, 27))),
        (0, 1))(a, b))
    for dilation in (1, 3, 9, 27):
        ref = lambda a, b: lax.conv_general_dilated(
            a, b, (1,), [(dilation, dilation)], rhs_dilation=(dilation,),
            dimension_numbers=("NHC", "HIO", "NHC"))
        expected = jax.value_and_grad(lambda a, b: jnp.sum(jnp.sin(ref(a, b))), (0, 1))(x, w)
        got = ours(x, w, jnp.int32(dilation))
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_looped_conv_blocks_equal_the_unrolled_resunet():
    """At inference a TPU runs each level's repeated ConvBlockRes as one loop
    body over their stacked variables (``blocks.conv_blocks``): the same
    variables (created unrolled), and the same restored mel as unrolled,
    in the default and the TPU's forms, with frames past ``valid``."""
    from vf_jax import backends
    from vf_jax.models import analysis
    unet = analysis.unet(0.25)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 128, 128, 2))
    variables = unet.init(jax.random.PRNGKey(0), x)
    with backends.force_loops(True):
        again = jax.jit(unet.init)(jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(variables)
    # Stored statistics away from their initial values, so that each block's own count.
    stats = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.3 + 0.01 * len(jax.tree_util.keystr(p)), variables["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": stats}
    valid = jnp.array([128, 90])
    for family in backends.FAMILIES:
        with backends.force(family):
            expected = jax.jit(lambda v: unet.apply(v, x, valid=valid))(variables)
            with backends.force_loops(True):
                got = jax.jit(lambda v: unet.apply(v, x, valid=valid))(variables)
        np.testing.assert_allclose(got, expected, rtol=0,
                                   atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@pytest.mark.parametrize("frames, bins", [(12, 9), (7, 127), (16, 16)])
def test_folded_layout_round_trip_and_conv3x3(frames, bins):
    """The 2x2 folded layout of the ResUNet's first level on TPU: folding
    round-trips at both offsets, and its 3x3 convolution (offset 0 -> 1 -> 0)
    equals XLA's "same" convolution in values and both gradients."""
    from jax import lax

    from vf_jax.models import folded
    rng = np.random.default_rng(frames)
    x = jnp.asarray(rng.standard_normal((2, frames, bins, 3)), jnp.float32)
    w1 = jnp.asarray(rng.standard_normal((3, 3, 3, 5)), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((3, 3, 5, 4)), jnp.float32)
    for offset in (0, 1):
        round_trip = folded.unfold(folded.fold(x, offset), frames, bins, offset)
        np.testing.assert_array_equal(round_trip, x)
    same = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), ((1, 1), (1, 1)),
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def plain(x, w1, w2):
        return same(jnp.tanh(same(x, w1)), w2)

    def in_folded(x, w1, w2):
        h = folded.conv3x3(folded.fold(x), w1, 0, frames, bins)
        h = folded.apply_mask(jnp.tanh(h), folded.real_mask(1, frames, bins, h.shape))
        return folded.unfold(folded.conv3x3(h, w2, 1, frames, bins), frames, bins)

    loss = lambda f: jax.value_and_grad(lambda *a: jnp.sum(jnp.sin(f(*a))), (0, 1, 2))(x, w1, w2)
    for a, b in zip(jax.tree_util.tree_leaves(loss(in_folded)),
                    jax.tree_util.tree_leaves(loss(plain))):
        # float32 sums of values up to ~100: rounding is relative to the largest
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("train", [False, True])
def test_folded_encoder_block_equals_plain(train):
    """An encoder block (four ConvBlockRes, pooling) in the folded layout against
    the plain one: outputs, skip, updated BatchNorm statistics and gradients, with
    frames masked past ``valid``."""
    from vf_jax.models import folded
    rng = np.random.default_rng(3)
    frames, bins = 16, 127
    x = jnp.asarray(rng.standard_normal((2, frames, bins, 2)), jnp.float32)
    valid = jnp.array([16, 11])
    block = blocks.EncoderBlockRes(8)
    variables = block.init(jax.random.PRNGKey(0), x, False)
    stats = jax.tree_util.tree_map(lambda a: a + 0.3 * rng.random(a.shape, np.float32),
                                   variables["batch_stats"])

    def run(params, fold):
        (pooled, skip), new = block.apply({"params": params, "batch_stats": stats}, x, train,
                                          valid, fold, mutable=["batch_stats"])
        if fold:
            skip = folded.unfold(skip, frames, bins)
        return jnp.sum(jnp.sin(pooled)) + jnp.sum(jnp.cos(skip)), (pooled, skip, new)

    (plain_loss, plain), plain_grad = jax.value_and_grad(run, has_aux=True)(
        variables["params"], False)
    (fold_loss, ours), fold_grad = jax.value_and_grad(run, has_aux=True)(
        variables["params"], True)
    np.testing.assert_allclose(fold_loss, plain_loss, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves((ours, fold_grad)),
                    jax.tree_util.tree_leaves((plain, plain_grad))):
        # float32 rounding, relative to each array's scale (gradients reach 1e3)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(b))))

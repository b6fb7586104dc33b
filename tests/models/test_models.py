"""The paper's analysis networks: sizes from docs/voicefixer.md, shapes, residual form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vf_jax.models import registry as models


def count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def gru_params(inp, hidden, layers=2):
    """PyTorch's bidirectional GRU: per direction 3H(in + H) weights, two 3H biases."""
    total = 0
    for layer in range(layers):
        width = inp if layer == 0 else 2 * hidden
        total += 2 * (3 * hidden * (width + hidden) + 2 * 3 * hidden)
    return total


def dense(i, o):
    return i * o + o


EXPECTED = {
    # docs/voicefixer.md: "ResUNet with 1 input channel 65,152,867".
    "unet": 65_152_867,
    # docs/voicefixer.md: VF-BiGRU ~2.17 M: BN2d(1), Linear 128->256, BN_GRU(256),
    # 512->256, 256->128.
    "bigru": 2 + dense(128, 256) + 2 + gru_params(256, 256) + dense(512, 256) + dense(256, 128),
    # docs/voicefixer.md: VF-DNN ~1.38 M: six Linear layers, four BN2d(1).
    "dnn": (dense(128, 256) + dense(256, 512) + dense(512, 1024) + dense(1024, 512)
            + dense(512, 256) + dense(256, 128) + 4 * 2),
}


@pytest.mark.parametrize("kind", ["unet", "bigru", "dnn"])
def test_parameter_counts(kind):
    params = models.analysis_template(kind)["params"]
    assert count(params) == EXPECTED[kind]
    assert EXPECTED["bigru"] == pytest.approx(2.17e6, rel=0.01)
    assert EXPECTED["dnn"] == pytest.approx(1.38e6, rel=0.01)


@pytest.mark.parametrize("kind", ["released", "unet", "bigru", "dnn"])
def test_a_narrower_network_keeps_the_layout(kind):
    """``width`` scales the hidden sizes only: the same arrays by the same
    names (no block loses its shortcut), mel-sized ends."""
    wide, narrow = (jax.tree_util.tree_flatten_with_path(models.analysis_template(kind, w))[0]
                    for w in (1.0, 1 / 12))
    assert [path for path, _ in wide] == [path for path, _ in narrow]
    for (path, a), (_, b) in zip(wide, narrow):
        name = jax.tree_util.keystr(path)
        for big, small in zip(a.shape, b.shape):
            # Only 1x1 and 3x3 kernels, BatchNorm scalars, the 2 input channels
            # and the 128 mels (127 in the ResUNet) may keep their sizes; a
            # concatenation's width is the sum of two rounded ones.
            assert (abs(small - big / 12) <= 1
                    or (small == big and big in (1, 2, 3, 127, 128))), name
    # The ends stay mel-sized.
    module = models.analysis_module(kind, 1 / 12)
    variables = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype),
                                       models.analysis_template(kind, 1 / 12))
    assert module.apply(variables, jnp.ones((1, 64, 128))).shape == (1, 64, 128)


@pytest.mark.parametrize("kind", ["bigru", "dnn"])
def test_zero_output_layer_is_identity_in_the_log_domain(kind):
    """The residual form: with the last layer zeroed, the output is log10 M."""
    model = models.analysis_module(kind)
    mel = jnp.asarray(np.random.default_rng(0).uniform(1e-4, 10, (2, 50, 128)), jnp.float32)
    variables = model.init(jax.random.PRNGKey(0), mel)
    params = jax.tree_util.tree_map(lambda x: x, variables["params"])
    params["dense_out"] = jax.tree_util.tree_map(jnp.zeros_like, params["dense_out"])
    out = model.apply(dict(variables, params=params), mel)
    np.testing.assert_allclose(out, np.log10(np.asarray(mel)), rtol=1e-6, atol=1e-6)
    # Frames are independent in the DNN; the BiGRU mixes them.
    full = model.apply(variables, mel)
    first = model.apply(variables, mel[:, :25])
    same = np.allclose(full[:, :25], first, atol=1e-5)
    assert same == (kind == "dnn")

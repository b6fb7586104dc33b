"""The optimiser builder against Adam and AMSGrad written out in NumPy
(Kingma & Ba 2015; Reddi et al. 2018, with bias-corrected moments as optax)."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vf_jax.training import optim


def numpy_adam(grads, lr, b1, b2, eps, clip, amsgrad):
    """Parameter updates for a sequence of gradients."""
    m = v = v_max = np.zeros_like(grads[0])
    out = []
    for t, g in enumerate(grads, start=1):
        if clip:
            g = g * min(1.0, clip / np.linalg.norm(g))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        if amsgrad:
            v_max = np.maximum(v_max, v_hat)
            v_hat = v_max
        out.append(-lr * m_hat / (np.sqrt(v_hat) + eps))
    return out


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_adam_and_amsgrad_with_clipping_equal_the_written_out_rules(amsgrad, clip):
    config = ml_collections.ConfigDict(dict(b1=0.5, b2=0.9, eps=1e-3, grad_clip=clip))
    rng = np.random.default_rng(0)
    # Large, then small gradients: AMSGrad keeps the largest second moment,
    # so its steps differ from Adam's; clipping acts on the large ones only.
    grads = [rng.normal(size=5) * s for s in (3.0, 2.0, 0.1, 0.1)]
    tx = optim.adam(config, 0.01, amsgrad=amsgrad)
    state = tx.init(jnp.zeros(5))
    ours = []
    for g in grads:
        update, state = tx.update(jnp.asarray(g, jnp.float32), state)
        ours.append(np.asarray(update))
    ref = numpy_adam(grads, 0.01, 0.5, 0.9, 1e-3, clip, amsgrad)
    np.testing.assert_allclose(np.stack(ours), np.stack(ref), rtol=1e-5, atol=1e-9)
    # The two rules part where the gradients shrink; clipping changes the steps.
    other = numpy_adam(grads, 0.01, 0.5, 0.9, 1e-3, clip, not amsgrad)
    assert np.max(np.abs(np.stack(ref)[2:] - np.stack(other)[2:])) > 1e-4
    if clip:
        unclipped = numpy_adam(grads, 0.01, 0.5, 0.9, 1e-3, 0.0, amsgrad)
        assert np.max(np.abs(np.stack(ref) - np.stack(unclipped))) > 1e-4
    assert len(state) == (2 if clip else 1)

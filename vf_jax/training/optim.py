"""The one optimiser builder of every training: Adam or AMSGrad after
optional global-norm clipping, from a training config's keys."""

from __future__ import annotations

import ml_collections
import optax


def adam(config: ml_collections.ConfigDict, learning_rate, amsgrad: bool = False
         ) -> optax.GradientTransformation:
    """Adam (AMSGrad with ``amsgrad``: the analysis networks, as the original
    trained them) with ``config.b1``, ``config.b2`` and ``config.eps``
    (default 1e-8), after clipping the gradients' global norm to
    ``config.grad_clip`` when that is set. ``learning_rate``: a float or an
    optax schedule. The chain's structure (and so the optimiser state's
    tree, which checkpoints hold) is one link, or two with clipping."""
    chain = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip else []
    rule = optax.amsgrad if amsgrad else optax.adam
    chain.append(rule(learning_rate, b1=config.b1, b2=config.b2, eps=config.eps))
    return optax.chain(*chain)

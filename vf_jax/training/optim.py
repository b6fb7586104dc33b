"""The one optimiser builder of every training: Adam or AMSGrad after
optional global-norm clipping, from a training config's keys; and freezing
parts of a network by the names of their parameters (fine-tuning)."""

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


# ------------------------------------------------------------- freezing ---

def path_names(tree) -> list[str]:
    """``"a/b/c"`` for every leaf of a nested dict (parameters, statistics)."""
    import jax
    return ["/".join(str(getattr(k, "key", k)) for k in path)
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def frozen_mask(tree, patterns: str, strict: bool = True):
    """``tree``'s structure with True where a leaf's path (``unet/encoder1/...``)
    matches one of the comma-separated glob ``patterns`` or lies under a match
    (``denoiser`` freezes everything of the denoiser, ``unet/encoder*`` the
    UNet's encoder). With ``strict``, a pattern that matches nothing is a
    :class:`vf_jax.errors.UserError` (a misspelt name would train everything)."""
    import fnmatch

    import jax

    from vf_jax.errors import UserError
    wanted = [p.strip().strip("/") for p in patterns.split(",") if p.strip()]
    names = path_names(tree)

    def matches(name, pattern):    # the leaf itself, or a part above it
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + "/*")

    def frozen(name):
        return any(matches(name, p) for p in wanted)
    for p in wanted if strict else ():
        if not any(matches(n, p) for n in names):
            tops = sorted({n.split("/")[0] for n in names})
            raise UserError(f"freeze pattern {p!r} matches no parameter (the network's parts: "
                            f"{', '.join(tops)})")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree),
                                        [frozen(n) for n in names])


def with_frozen(tx: optax.GradientTransformation, patterns: str
                ) -> optax.GradientTransformation:
    """``tx`` for the parameters not matched by ``patterns`` (:func:`frozen_mask`,
    checked when the optimiser first sees the parameters); the matched ones get
    no update and no optimiser state. No patterns: ``tx`` itself."""
    if not patterns.strip():
        return tx
    import jax

    def labels(params):
        return jax.tree_util.tree_map(lambda f: "frozen" if f else "trained",
                                      frozen_mask(params, patterns))
    return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)

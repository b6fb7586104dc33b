"""Training checkpoints (orbax): the training state and the data iterator's
position, the newest K kept plus the best on validation.

Layout: ``WORKDIR/checkpoints/<step>/{state,data}``; a checkpoint saved
after a validation carries its metrics (orbax's ``metrics``), which is what
"best" is judged on. Saves are asynchronous: the state is copied to the host,
written in the background, and the next save (or the manager's ``close()``) waits for it.
A newest checkpoint that does not read back (partial, corrupt) is moved to
``WORKDIR/broken_checkpoints/`` with a warning and the previous one is used.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import jax

from vf_jax.errors import first_line

CHECKPOINTS = "checkpoints"
BROKEN = "broken_checkpoints"


class _NoMetricsNotice(logging.Filter):
    """Saves between validations carry no metrics, by design: orbax's warning
    about it on every such save is noise."""

    def filter(self, record):
        return "did not provide metrics" not in record.getMessage()


logging.getLogger("absl").addFilter(_NoMetricsNotice())


def manager(workdir: str, keep: int = 3, best_metric: str | None = None,
            best_mode: str = "min"):
    """An orbax ``CheckpointManager`` for ``state`` (pytree) and ``data``
    (grain iterator) items: the newest ``keep`` plus the single best on
    ``best_metric`` (``min`` or ``max``) among those saved with metrics."""
    import grain
    import orbax.checkpoint as ocp
    from orbax.checkpoint import checkpoint_managers as policies
    keep_policies = [policies.LatestN(n=keep)]
    if best_metric:
        keep_policies.append(policies.BestN(
            get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1,
            keep_checkpoints_without_metrics=False))
    # best_fn makes orbax write each checkpoint's metrics to disk, so "best"
    # survives a restart (and `export` can find it).
    best = dict(best_fn=lambda m: m[best_metric], best_mode=best_mode) if best_metric else {}
    options = ocp.CheckpointManagerOptions(
        create=True, preservation_policy=policies.AnyPreservationPolicy(keep_policies), **best)
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), CHECKPOINTS), options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler()})


def restore_newest(mgr, abstract_state, data_iter, workdir: str):
    """The newest checkpoint that reads back, into ``abstract_state``'s
    structure, with ``data_iter`` set to its position. Returns the state or
    None when there is none."""
    import grain
    import orbax.checkpoint as ocp
    for step in sorted(mgr.all_steps(), reverse=True):
        try:
            restored = mgr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=grain.checkpoint.CheckpointRestore(data_iter)))
            return restored["state"]
        except Exception as e:   # partial or corrupt: fall back to the previous one
            first = first_line(e)
            aside = os.path.join(workdir, BROKEN, f"{step}-{int(time.time())}")
            if jax.process_index() == 0:
                os.makedirs(os.path.dirname(aside), exist_ok=True)
                os.replace(os.path.join(str(mgr.directory), str(step)), aside)
            mgr.reload()
            print(f"warning: checkpoint {step} does not read back ({first}); moved to "
                  f"{aside}; trying the previous one", file=sys.stderr)
    return None


def save(mgr, step: int, state, data_iter, metrics: dict | None = None) -> None:
    """Start saving ``state`` (copied to the host now) and the iterator's
    position as ``step``; returns while the files are written."""
    import grain
    import orbax.checkpoint as ocp
    host_state = jax.device_get(state)
    mgr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host_state),
        data=grain.checkpoint.CheckpointSave(_PositionNow(data_iter))),
        metrics=metrics, force=True)


class _PositionNow:
    """The iterator's position when the save started (the loop moves on while
    the files are written)."""

    def __init__(self, data_iter):
        self._state = data_iter.get_state()

    def get_state(self):
        return self._state


def abstract(state):
    """Shapes and dtypes of ``state``, the target a restore fills."""
    import orbax.checkpoint as ocp
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)


def pick_step(mgr, workdir: str, which: str = "best", best_metric: str | None = None) -> int:
    """The step ``which`` names among ``mgr``'s checkpoints: ``best`` (on
    ``best_metric``; the newest when no checkpoint carries metrics),
    ``latest`` or a step number."""
    from vf_jax.errors import UserError
    steps = mgr.all_steps()
    if not steps:
        raise UserError(f"{workdir} has no checkpoints")
    if which == "latest":
        return mgr.latest_step()
    if which == "best":
        step = mgr.best_step() if best_metric else None
        return mgr.latest_step() if step is None else step
    try:
        step = int(which)
    except ValueError:
        raise UserError(f"checkpoint must be best, latest or a step number, "
                        f"got {which!r}") from None
    if step not in steps:
        raise UserError(f"{workdir} has no checkpoint {step} (it has {steps})")
    return step


def restore_parts(workdir: str, parts: tuple[str, ...], which: str = "best",
                  best_metric: str | None = None) -> tuple[dict, int]:
    """Only the fields ``parts`` of one saved training state (e.g. ``params``
    and ``batch_stats``, or ``generator_ema``), read-only and as NumPy
    arrays: orbax restores that subtree alone, with the shapes the
    checkpoint records, and nothing else of the state (optimisers,
    discriminators) is built or read. ``which`` as :func:`pick_step`.
    Returns ``({part: subtree}, step)``."""
    import numpy as np
    import orbax.checkpoint as ocp

    from vf_jax.errors import UserError
    folder = os.path.join(os.path.abspath(workdir), CHECKPOINTS)
    if not os.path.isdir(folder):
        raise UserError(f"{workdir} has no checkpoints")
    mgr = manager(workdir, best_metric=best_metric)
    try:
        step = pick_step(mgr, workdir, which, best_metric)
    finally:
        mgr.close()
    path = os.path.join(folder, str(step), "state")
    checkpointer = ocp.PyTreeCheckpointer()
    try:
        saved = checkpointer.metadata(path).item_metadata.tree
        missing = [p for p in parts if p not in saved]
        if missing:
            raise UserError(f"checkpoint {step} of {workdir} has no {', '.join(missing)}")
        target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                                        {p: saved[p] for p in parts})
        restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
            item=target, partial_restore=True,
            restore_args=jax.tree_util.tree_map(
                lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)))
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"checkpoint {step} of {workdir} does not read back: "
                        f"{first_line(e)}") from None
    return restored, step

"""The training loop every model family shares (analysis networks, vocoder).

:func:`run` takes a fresh state, the data and a :class:`Task` (how to
build the step, how to validate) and does the rest: resume from the newest
checkpoint that reads back, place the state for ``config.parallel`` (jit over
the mesh, or pmap), step, log, validate, save, and stop cleanly.

- Resume: state, PRNG and the data iterator's position come back, so a
  stopped-and-resumed run ends where an uninterrupted one does.
- SIGTERM (preemption) or ``config.max_train_seconds`` saves and returns.
- A non-finite metric stops with the step number and keeps the last good
  checkpoint (nothing non-finite is saved).
- Host syncs happen only when logging, validating or saving.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from vf_jax.errors import UserError
from vf_jax.training import checkpoints, parallel, summaries


class TrainingStopped(UserError):
    """Training cannot go on (e.g. a non-finite loss)."""


@dataclasses.dataclass
class Task:
    """What the loop needs from a model family.

    ``make_step(axis_name)``: the update ``(state, batch) -> (state, metrics)``;
    with an axis name (pmap) the batch is this device's share and reductions
    are over the axis. ``phase(step)`` (optional): for a task whose update
    changes with the step (the vocoder's discriminators start at a step), a
    hashable naming which update step ``step`` (0-based) runs; the loop then
    calls ``make_step(axis_name, phase)`` and compiles each phase once, when
    it is first needed. The choice is made on the host, from the loop's own
    count: no device sync. ``validate(state, step, first, logs)``: metrics
    ``{"val/...": value}`` (``state`` replicated over the mesh; ``first`` on
    the run's first validation), or None for no validation. ``best_metric``:
    the validation metric (lower is better) whose best checkpoint is kept.
    ``fast_compile(phase)`` (optional; ``phase`` None without phases): whether
    that update takes the TPU compiler's fast mode under ``jax.jit``
    (:func:`vf_jax.compilation.options_for`); by default every one does.
    """
    make_step: Callable
    validate: Callable | None = None
    best_metric: str | None = None
    phase: Callable[[int], object] | None = None
    fast_compile: Callable[[object], bool] | None = None


CONFIG_FILE = "config.json"


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """``WORKDIR/config.json``, written whole (temp file + rename)."""
    path = os.path.join(workdir, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    os.replace(path + ".tmp", path)


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in ``workdir`` was started with."""
    import json
    path = os.path.join(workdir, CONFIG_FILE)
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except FileNotFoundError:
        raise UserError(f"{workdir} is not a training run folder (no {CONFIG_FILE})") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def mesh_for(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    """Join the other hosts when ``config.distributed``; a mesh over every device."""
    if config.distributed:
        parallel.initialize_distributed(config)
    return parallel.make_mesh(jax.devices())


def run(config: ml_collections.ConfigDict, workdir: str, state, data, task: Task,
        mesh: jax.sharding.Mesh):
    """Train ``state`` until ``config.num_steps`` (or a stop) on batches from
    ``data`` (this host's share: a grain loader, or any iterable whose iterator
    checkpoints like grain's); returns the final state on the host."""
    data_iter = iter(data)
    try:
        return _run(config, workdir, state, data_iter, task, mesh)
    finally:
        del data_iter   # stops grain's worker processes


def _run(config, workdir, state, data_iter, task, mesh):
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:   # what `python -m vf_jax export` rebuilds the networks from
        write_config(config, workdir)
    local_devices = jax.local_device_count()
    host_batch = config.batch_size_per_device * local_devices
    validating_run = task.validate is not None and config.eval_every > 0

    # ------------------------------------------------------- checkpoint ---
    manager = checkpoints.manager(workdir, config.keep_checkpoints,
                                  best_metric=task.best_metric if validating_run else None)
    restored = checkpoints.restore_newest(manager, checkpoints.abstract(state), data_iter,
                                          workdir)
    if restored is not None:
        # On the host: placing device arrays onto a mesh spanning other hosts
        # would be a cross-host transfer; host values go to every process's devices.
        state = jax.device_get(restored)
        print(f"resumed from step {int(state.step)}", file=sys.stderr)

    # ------------------------------------------------------ update step ---
    def build(make, key):
        fast = task.fast_compile(key) if task.fast_compile is not None else True
        return (parallel.pmap_step(make(parallel.AXIS)) if config.parallel == "pmap"
                else parallel.jit_step(make(None), mesh, fast_compile=fast))
    if config.parallel == "pmap":
        state = parallel.replicate(state)
        to_device = lambda b: {k: v.reshape(local_devices, -1, *v.shape[1:])
                               for k, v in b.items()}
        unreplicate = lambda s: jax.tree_util.tree_map(lambda x: x[0], s)
        # Validation runs jitted over the mesh on a replicated copy.
        on_mesh = lambda s: parallel.place_replicated(jax.device_get(unreplicate(s)), mesh)
    elif config.parallel == "jit":
        state = parallel.place_replicated(state, mesh)
        to_device = lambda b: parallel.global_batch(b, mesh)
        unreplicate = on_mesh = lambda s: s
    else:
        raise UserError(f"config.parallel must be jit or pmap, got {config.parallel!r}")
    compiled = {}

    def step_fn_for(step: int):
        key = task.phase(step) if task.phase is not None else None
        if key not in compiled:
            compiled[key] = build(task.make_step if task.phase is None
                                  else lambda axis: task.make_step(axis, key), key)
        return compiled[key]

    # ------------------------------------------------------------- loop ---
    logs = summaries.Summaries(workdir, tensorboard=config.tensorboard)
    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: stop.update(signal=sig))
    eval_every = config.eval_every if validating_run else 0
    log_every = config.log_every
    checkpoint_every = config.checkpoint_every
    time_budget = config.max_train_seconds
    start_step = int(unreplicate(state).step)
    bar = None
    if not config.quiet:   # progress with ETA; host-side only
        from tqdm import tqdm
        if time_budget:
            # A time budget stops the run: the bar counts its seconds (the
            # step count may be a placeholder such as 10**9).
            bar = tqdm(total=round(float(time_budget)), unit="s", desc="training",
                       file=sys.stderr, dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                  "[{elapsed}<{remaining}{postfix}]")
        else:
            bar = tqdm(total=config.num_steps, initial=start_step, unit="step",
                       desc="training", file=sys.stderr, dynamic_ncols=True)
    started = time.perf_counter()
    validated = False
    try:
        for step in range(start_step, config.num_steps):
            batch = next(data_iter)
            state, metrics = step_fn_for(step)(state, to_device(batch))
            done = step + 1
            elapsed = time.perf_counter() - started
            if bar is not None:
                bar.update(min(elapsed, bar.total) - bar.n if time_budget else 1)
            out_of_time = bool(time_budget) and elapsed >= time_budget
            stopping = stop["signal"] is not None or out_of_time
            last_step = done == config.num_steps or stopping
            logging = done % log_every == 0 or last_step
            validating = bool(eval_every) and (done % eval_every == 0 or last_step)
            saving = done % checkpoint_every == 0 or last_step or validating
            if not (logging or saving):
                continue
            values = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in metrics.items()}
            bad = sorted(k for k, v in values.items() if not np.isfinite(v))
            if bad:
                manager.wait_until_finished()
                raise TrainingStopped(
                    f"non-finite {', '.join(bad)} at step {done}; the last good checkpoint "
                    f"(step {manager.latest_step()}) is kept in {workdir}")
            values["examples_per_second"] = (
                (done - start_step) * host_batch * jax.process_count() / elapsed)
            if logging:
                logs.scalars(done, values)
                if bar is not None:
                    steps = {"step": done} if time_budget else {}
                    bar.set_postfix(**steps, loss=f"{values['loss']:.4f}",
                                    examples_s=f"{values['examples_per_second']:.1f}")
            validation = None
            if validating:
                validation = task.validate(on_mesh(state), done, not validated, logs)
                logs.flush()
                validated = True
            if saving:
                checkpoints.save(manager, done, unreplicate(state), data_iter, validation)
            if stopping:
                why = (f"signal {stop['signal']}" if stop["signal"] is not None
                       else f"the time budget ({time_budget:g} s)")
                if stop["signal"] is not None or not config.quiet:
                    print(f"stopped by {why} at step {done}; checkpoint saved",
                          file=sys.stderr)
                break
    finally:
        if bar is not None:
            bar.close()
        signal.signal(signal.SIGTERM, previous)
        manager.wait_until_finished()
        manager.close()
        logs.close()
    return jax.device_get(unreplicate(state))

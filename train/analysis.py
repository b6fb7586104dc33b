r"""Train an analysis network (VF-UNet, VF-BiGRU, VF-DNN, or the released one).

    python -m train.analysis --config configs/tiny.py --workdir runs/tiny
    python -m train.analysis --config configs/resunet.py --workdir runs/resunet \
        --config.data_dir=data/ --config.parallel=pmap

Re-running with the same ``--workdir`` resumes from the newest checkpoint that
reads back (parameters, BatchNorm statistics, optimiser, PRNG and the data
iterator's position), so a stopped-and-resumed run ends where an uninterrupted
one does. SIGTERM (preemption) saves and exits cleanly. Metrics go to
``WORKDIR/metrics.jsonl``; the console shows a progress bar with the loss and ETA.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import jax
import ml_collections
import numpy as np

from vf_jax import train_step as ts
from vf_jax.errors import UserError


class TrainingStopped(UserError):
    """Training cannot go on (e.g. a non-finite loss)."""


def _shipped_clip_source():
    """The demo's clip as a one-utterance speech source (int16 records)."""
    from vf_jax import audio_io, demo
    return [{"audio": audio_io.to_pcm16(demo.load_clip())}]


def _checkpoint_manager(workdir: str, config):
    import grain
    import orbax.checkpoint as ocp
    options = ocp.CheckpointManagerOptions(max_to_keep=config.get("keep_checkpoints", 3),
                                           create=True)
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"), options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler()})


def _restore_newest(manager, abstract_state, data_iter, workdir: str):
    """The newest checkpoint that reads back. A broken one is moved aside to
    ``WORKDIR/broken_checkpoints/`` with a warning (the run will write that
    step again). Returns the state or None."""
    import grain
    import orbax.checkpoint as ocp
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=grain.checkpoint.CheckpointRestore(data_iter)))
            return restored["state"]
        except Exception as e:   # partial or corrupt: fall back to the previous one
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            aside = os.path.join(workdir, "broken_checkpoints", f"{step}-{int(time.time())}")
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            os.replace(os.path.join(str(manager.directory), str(step)), aside)
            manager.reload()
            print(f"warning: checkpoint {step} does not read back ({first}); moved to "
                  f"{aside}; trying the previous one", file=sys.stderr)
    return None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train until ``config.num_steps``; returns the last metrics."""
    import grain
    import orbax.checkpoint as ocp
    os.makedirs(workdir, exist_ok=True)

    # ------------------------------------------------------------- mesh ---
    if config.get("distributed", False):
        jax.distributed.initialize()
    devices = jax.devices()
    mesh = ts.make_mesh(devices)
    local_devices = jax.local_device_count()
    host_batch = config.batch_size_per_device * local_devices

    # ------------------------------------------------------------ input ---
    from vf_jax.data import loader
    if config.data_dir:
        sources = loader.Sources.from_data_dir(config.data_dir)
    else:
        sources = loader.Sources(speech=_shipped_clip_source())
    data = loader.make_loader(sources, batch_size=host_batch, seed=config.seed,
                              crop_seconds=config.crop_seconds, rir_seconds=config.rir_seconds,
                              worker_count=config.worker_count)
    data_iter = iter(data)

    # ---------------------------------------------- model and optimiser ---
    state = ts.init_state(config, jax.random.PRNGKey(config.seed))

    # ------------------------------------------------------- checkpoint ---
    manager = _checkpoint_manager(workdir, config)
    restored = _restore_newest(manager, jax.tree_util.tree_map(
        ocp.utils.to_shape_dtype_struct, state), data_iter, workdir)
    if restored is not None:
        state = restored
        print(f"resumed from step {int(state.step)}", file=sys.stderr)

    def save(state):
        host_state = jax.device_get(state)
        manager.save(int(host_state.step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_state),
            data=grain.checkpoint.CheckpointSave(data_iter)), force=True)
        manager.wait_until_finished()

    # ------------------------------------------------------ update step ---
    if config.parallel == "pmap":
        step_fn = ts.pmap_step(config)
        state = ts.replicate(state)
        to_device = lambda b: {k: v.reshape(local_devices, -1, *v.shape[1:])
                               for k, v in b.items()}
        unreplicate = lambda s: jax.tree_util.tree_map(lambda x: x[0], s)
    elif config.parallel == "jit":
        step_fn = ts.jit_step(config, mesh)
        state = ts.place_replicated(state, mesh)
        to_device = lambda b: ts.global_batch(b, mesh)
        unreplicate = lambda s: s
    else:
        raise UserError(f"config.parallel must be jit or pmap, got {config.parallel!r}")

    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: stop.update(signal=sig))
    log_every = config.get("log_every", 10)
    checkpoint_every = config.get("checkpoint_every", 1000)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    start_step = int(unreplicate(state).step)
    last = {}
    bar = None
    if not config.get("quiet", False):   # progress with ETA; host-side only
        from tqdm import tqdm
        bar = tqdm(total=config.num_steps, initial=start_step, unit="step", desc="training",
                   file=sys.stderr, dynamic_ncols=True)
    started = time.perf_counter()
    try:
        for step in range(start_step, config.num_steps):
            batch = next(data_iter)
            state, metrics = step_fn(state, to_device(batch))
            done = step + 1
            if bar is not None:
                bar.update(1)
            stopping = stop["signal"] is not None
            logging = done % log_every == 0 or done == config.num_steps
            saving = done % checkpoint_every == 0 or done == config.num_steps or stopping
            if not (logging or saving):
                continue
            # The only host syncs: when logging or saving. Nothing non-finite is saved.
            last = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in metrics.items()}
            if not (np.isfinite(last["loss"]) and np.isfinite(last["grad_norm"])):
                raise TrainingStopped(
                    f"non-finite loss or gradient at step {done}; the last good checkpoint "
                    f"(step {manager.latest_step()}) is kept in {workdir}")
            elapsed = time.perf_counter() - started
            last.update(step=done, examples_per_second=(
                (done - start_step) * host_batch * jax.process_count() / elapsed))
            if logging:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(last) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss']:.4f}",
                                    examples_s=f"{last['examples_per_second']:.1f}")
            if saving:
                save(unreplicate(state))
            if stopping:
                print(f"stopped by signal {stop['signal']} at step {done}; checkpoint saved",
                      file=sys.stderr)
                break
    finally:
        if bar is not None:
            bar.close()
        signal.signal(signal.SIGTERM, previous)
        manager.close()
        del data_iter
    return last


def main(argv=None) -> int:
    from absl import flags
    from ml_collections import config_flags

    from vf_jax.errors import run_guarded
    config_flags.DEFINE_config_file("config", None, "training config file", lock_config=True)
    flags.DEFINE_string("workdir", None, "run folder (checkpoints, metrics)")
    flags.mark_flags_as_required(["config", "workdir"])
    flags.FLAGS(sys.argv if argv is None else argv)
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir

    def job() -> int:
        train_and_evaluate(config, workdir)
        return 0
    return run_guarded("python -m train.analysis", job)


if __name__ == "__main__":
    sys.exit(main())

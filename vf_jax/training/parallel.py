"""Data parallelism shared by every training loop.

Two ways to run one step function ``(state, batch) -> (state, metrics)``:

- :func:`jit_step`: ``jax.jit`` over a 1-D ``("data",)`` device mesh, state
  replicated, batch sharded (global arrays built from each host's share with
  :func:`global_batch`), the old state's buffers donated;
- :func:`pmap_step`: ``jax.pmap`` over the local devices, state stacked on a
  leading device axis (:func:`replicate`), batch ``(devices, per_device, ...)``.

Several hosts join with :func:`initialize_distributed`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vf_jax import compilation

AXIS = "batch"   # the pmap axis name step functions reduce over


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D ``("data",)`` mesh over every device (``AxisType.Auto``: Flax's
    RNN does not trace on explicit-axis meshes)."""
    devices = jax.devices() if devices is None else devices
    return jax.make_mesh((len(devices),), ("data",), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,))


def jit_step(step, mesh: jax.sharding.Mesh, fast_compile: bool = True):
    """``step`` under ``jax.jit``: state replicated, batch sharded over
    ``data``, the old state's buffers donated; compiled with
    :func:`vf_jax.compilation.compiler_options` (``fast_compile``: the step's
    choice of the TPU compiler's fast mode)."""
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    return jax.jit(step, in_shardings=(replicated, sharded),
                   out_shardings=(replicated, replicated), donate_argnums=0,
                   compiler_options=compilation.compiler_options(fast_compile))


def jit_eval(eval_fn, mesh: jax.sharding.Mesh, replicated_args: int, sharded_args: int = 1,
             trailing_replicated: int = 1, fast_compile: bool = True):
    """``eval_fn(*replicated, *sharded, *trailing)`` under ``jax.jit``: the
    first ``replicated_args`` arguments replicated, the next ``sharded_args``
    sharded over ``data``, the rest replicated; outputs replicated; options
    as :func:`jit_step`'s."""
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    shardings = ((replicated,) * replicated_args + (sharded,) * sharded_args
                 + (replicated,) * trailing_replicated)
    return jax.jit(eval_fn, in_shardings=shardings, out_shardings=replicated,
                   compiler_options=compilation.compiler_options(fast_compile))


def place_replicated(tree, mesh: jax.sharding.Mesh):
    """``tree`` on every device of ``mesh`` with the sharding :func:`jit_step`
    returns, so that the first call compiles the only program."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def global_batch(local_batch: dict, mesh: jax.sharding.Mesh) -> dict:
    """This host's numpy batch as global arrays sharded over ``data``."""
    sharding = NamedSharding(mesh, P("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v)
            for k, v in local_batch.items()}


def pmap_step(step):
    """``step`` (built for the axis :data:`AXIS`) under ``jax.pmap`` over the
    local devices, the old state's buffers donated."""
    return jax.pmap(step, axis_name=AXIS, donate_argnums=0)


def replicate(tree, count: int | None = None):
    """``count`` copies of ``tree`` (default: one per local device) stacked on
    a leading axis: the layout ``jax.pmap`` takes, placed one per device with
    the sharding :func:`pmap_step` returns — placed any other way, the first
    call's arguments differ from the later calls' and the step compiles twice."""
    devices = jax.local_devices()
    count = len(devices) if count is None else count
    stacked = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x, (count,) + jnp.shape(x)), tree)
    if count != len(devices):
        return stacked
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,),
                             axis_types=(jax.sharding.AxisType.Auto,))
    return jax.device_put(stacked, NamedSharding(mesh, P(AXIS)))


def example_keys(key, local: int, axis_name: str | None):
    """One key per example of the global batch; under ``axis_name`` (pmap)
    this device's ``local`` of them, so every way of running draws the same."""
    if axis_name is None:
        return jax.random.split(key, local)
    index = jax.lax.axis_index(axis_name)
    keys = jax.random.split(key, local * jax.lax.psum(1, axis_name))
    return jax.lax.dynamic_slice_in_dim(keys, index * local, local)


def initialize_distributed(config) -> None:
    """``jax.distributed.initialize()``: on TPU pods and SLURM/MPI clusters it
    finds its peers itself; elsewhere ``config.coordinator_address``,
    ``num_processes`` and ``process_id`` say. CPU processes talk over gloo."""
    kwargs = {}
    if config.coordinator_address:
        kwargs = dict(coordinator_address=config.coordinator_address,
                      num_processes=config.num_processes, process_id=config.process_id)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)

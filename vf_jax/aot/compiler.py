"""Compiling ahead of time for accelerator topologies, on any host: HBM,
FLOPs and the compiler's step-time estimate.

With ``libtpu`` installed, JAX describes a TPU topology's devices without a
TPU (``jax.experimental.topologies``); a program jitted over a mesh of them
and lowered with ``jax.ShapeDtypeStruct`` arguments compiles with the TPU's
own compiler, which reports the memory the program needs on each chip and
its own estimate of the step time. :func:`compile_program` does that and
returns a :class:`Report`; the JAX runtime stays on the host's CPU
(``JAX_PLATFORMS=cpu``), so nothing else changes.

>>> mesh = topology_mesh("v5e:2x2", chips=1)                    # doctest: +SKIP
>>> report = compile_program(fn, (shape_of(x, mesh, sharded=True),))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

# Per chip: HBM bytes, peak bf16 FLOP/s, HBM bandwidth in bytes/s (public TPU
# system specifications).
CHIPS = {
    "TPU v5 lite": dict(hbm=16e9, peak_flops=197e12, bandwidth=819e9),
    "TPU v6 lite": dict(hbm=32e9, peak_flops=918e12, bandwidth=1640e9),
    "TPU v5": dict(hbm=95e9, peak_flops=459e12, bandwidth=2765e9),
    "TPU v4": dict(hbm=32e9, peak_flops=275e12, bandwidth=1200e9),
}


@functools.cache
def topology(name: str):
    """The devices of a TPU topology such as ``"v5e:2x2"`` (needs libtpu)."""
    from jax.experimental import topologies
    return topologies.get_topology_desc(platform="tpu", topology_name=name)


def topology_mesh(name: str, chips: int | None = None) -> jax.sharding.Mesh:
    """A 1-D ``("data",)`` mesh over the first ``chips`` devices of topology
    ``name`` (all by default), with ``AxisType.Auto`` as the training mesh."""
    devices = topology(name).devices
    devices = devices[:chips] if chips else devices
    return jax.make_mesh((len(devices),), ("data",), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,))


def shape_of(tree, mesh: jax.sharding.Mesh, sharded: bool = False):
    """``jax.ShapeDtypeStruct``s of ``tree`` (arrays or structs) placed on
    ``mesh``: replicated, or split over ``data`` along the first axis."""
    sharding = NamedSharding(mesh, P("data") if sharded else P())
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(tuple(x.shape), x.dtype, sharding=sharding), tree)


@dataclasses.dataclass
class Report:
    """What the compiler says of one program on one chip."""
    compile_seconds: float
    hbm_bytes: float | None = None         # arguments + outputs + temporaries - aliased
    temp_bytes: float | None = None
    flops: float | None = None             # per chip, as compiled for the chip
    estimated_seconds: float | None = None   # the compiler's step-time estimate
    error: str | None = None
    bytes_accessed: float | None = None    # memory traffic of the compiled operations

    def roofline(self, flops: float | None, chip: dict) -> float | None:
        """The highest utilisation of ``chip``'s peak that ``flops`` of work
        over this program's memory traffic allows: ``min(1, (flops /
        bytes) / (peak / bandwidth))``. Below the chip's ridge point a
        program waits on HBM whatever its operations' forms."""
        if not (flops and self.bytes_accessed and chip):
            return None
        ridge = chip["peak_flops"] / chip["bandwidth"]
        return min(1.0, flops / self.bytes_accessed / ridge)

    @property
    def fits(self) -> bool:
        return self.error is None

    @property
    def unmodelled_ops(self) -> int:
        """Operations the compiler's cost model left out: it counts each as
        -1 s in ``optimal_seconds`` (FFTs above some lengths, some custom calls)."""
        s = self.estimated_seconds
        return 0 if s is None or s >= 0 else math.ceil(-s)

    @property
    def modelled_seconds(self) -> float | None:
        """The compiler's step-time estimate over the operations it models
        (``optimal_seconds`` less the -1 s of each unmodelled one; valid while
        under a second)."""
        s = self.estimated_seconds
        return None if s is None else s + self.unmodelled_ops


def compile_program(fn, args, *, donate_argnums=(), family: str | None = None,
                    fast_compile: bool = True) -> Report:
    """Lower ``jax.jit(fn)`` for ``args`` (``ShapeDtypeStruct``s with
    shardings, :func:`shape_of`) in the forms of their devices' platform
    (:mod:`vf_jax.backends`) and compile it; a program that does not fit
    comes back with ``error`` set (the compiler's first line). ``family``
    overrides the forms (``"default"``: those of CPU and GPU). The XLA options
    are those vf_jax compiles the program with on the target platform
    (:func:`vf_jax.compilation.options_for` with ``fast_compile``, the
    program's choice; XLA's own inside :func:`vf_jax.compilation.xla_defaults`).
    Errors while tracing are bugs, not a verdict on the chip: they are raised."""
    from vf_jax import backends, compilation
    start = time.perf_counter()
    platform = platform_of(args)
    # A fresh function, so that jax.jit traces it anew in the target's forms.
    jitted = jax.jit(lambda *a: fn(*a), donate_argnums=donate_argnums)
    with backends.force(family or backends.family_of(platform)):
        lowered = jitted.lower(*args)
    try:
        compiled = lowered.compile(
            compiler_options=compilation.options_for(platform, fast_compile))
    except Exception as e:    # RESOURCE_EXHAUSTED and friends
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Report(time.perf_counter() - start, error=message[:300])
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
    hbm = temp = None
    if memory is not None:
        temp = float(memory.temp_size_in_bytes)
        hbm = float(memory.argument_size_in_bytes + memory.output_size_in_bytes
                    + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
    return Report(seconds, hbm, temp, cost.get("flops"), cost.get("optimal_seconds"),
                  bytes_accessed=cost.get("bytes accessed"))


def model_flops(fn, args) -> float | None:
    """FLOPs per device of ``fn`` on ``args`` as written: XLA's analysis of the
    unoptimised program in the forms of CPU and GPU, lowered for the host
    (cheap: nothing is compiled), divided over the devices of the arguments'
    shardings. Unlike the compiled program's count it leaves out what a
    backend's form adds (the folded layout's zero taps, power-of-two FFT
    lengths), so utilisation from it compares forms fairly."""
    from vf_jax import backends
    devices = {d for leaf in jax.tree_util.tree_leaves(args)
               for d in getattr(getattr(leaf, "sharding", None), "device_set", ())}
    try:
        host = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    except RuntimeError:      # no CPU backend in this process (JAX_PLATFORMS)
        return None
    plain = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=host), args)
    with backends.force("default"):
        cost = jax.jit(lambda *a: fn(*a)).lower(*plain).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return None if flops is None else flops / max(len(devices), 1)


def platform_of(args) -> str:
    """The platform of the devices the arguments are placed on (``jax``'s
    default backend when none is)."""
    for leaf in jax.tree_util.tree_leaves(args):
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None:
            return next(iter(sharding.device_set)).platform
    return jax.default_backend()


def chip_of(mesh: jax.sharding.Mesh) -> dict:
    """HBM and peak FLOP/s of the mesh's chips (:data:`CHIPS`; empty if unknown)."""
    return CHIPS.get(mesh.devices.flat[0].device_kind, {})

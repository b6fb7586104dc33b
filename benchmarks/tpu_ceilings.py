r"""How much of a TPU chip's peak the vocoder's convolutions can use, and what
the TPU compiler can tell about kernels it did not write.

    python benchmarks/tpu_ceilings.py                     # v5e, float32 and bf16
    python benchmarks/tpu_ceilings.py --topology v6e:2x2 --seconds 10 --windows 4

Ahead of time, on this host (needs ``libtpu``; JAX's runtime stays on the CPU).

1. **One convolution of each residual stack.** The TFGAN generator's four
   residual stacks run kernel-3 convolutions at 512, 256, 128 and 64 channels
   over 7, 49, 147 and 441 samples per mel frame. For each, one dilated
   convolution over the batched restoration program's input (``--windows`` x
   ``--seconds``) is compiled for one chip in the form :func:`vf_jax.models.convolution.conv1d`
   uses on a TPU, in float32 and bf16. The table gives the compiler's estimate,
   the utilisation it implies, the memory traffic of the compiled program in
   passes over the activation (one pass = the activation's bytes), and the
   ceiling: the utilisation a convolution reaches when it reads its input and
   writes its output once each, ``min(1, (k C / b) / ridge)`` for ``k`` taps,
   ``C`` channels and ``b`` bytes per value (``ridge`` = peak FLOP/s over HBM
   bytes/s). Below the ridge a layer waits on memory whatever its form; only a
   kernel that keeps activations on chip across layers can pass that ceiling.
   The last line weighs the four stacks by their FLOPs per frame: the ceiling
   of the generator's stacks as a whole, with every convolution at two passes.

2. **A Pallas kernel's estimate.** A matrix product written as a Pallas TPU
   kernel is compiled with two declared costs (``pl.CostEstimate``), the true
   FLOPs and 1000 times them. The compiler's ``optimal_seconds`` for such a
   kernel follows the declaration: the step time of a fused kernel cannot be
   learned on this host, only on a TPU.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vf_jax.aot import compiler
from vf_jax.audio.io import SAMPLE_RATE  # noqa: E402
from vf_jax.models import convolution, vocoder  # noqa: E402

import record  # noqa: E402  (benchmarks/record.py)

TAPS = 3
# Any dilation: the TPU form's traffic does not depend on it (1 and 2187 measured the same).
DILATION = 27


def stacks():
    """(channels, samples per mel frame) of the generator's residual stacks."""
    channels, per_frame, out = vocoder.CHANNELS, 1, []
    for factor in vocoder.UPSAMPLE:
        channels //= 2
        per_frame *= factor
        out.append((channels, per_frame))
    return out


def ceiling(channels: int, value_bytes: int, chip: dict) -> float:
    """Utilisation of one kernel-3 convolution that moves its input and output once."""
    ridge = chip["peak_flops"] / chip["bandwidth"]
    return min(1.0, TAPS * channels / value_bytes / ridge)


def one_convolution(mesh, windows: int, channels: int, samples: int, dtype) -> dict:
    x = jax.ShapeDtypeStruct((windows, samples, channels), dtype)
    w = jax.ShapeDtypeStruct((TAPS, channels, channels), dtype)
    args = compiler.shape_of((x, w), mesh)
    report = compiler.compile_program(
        lambda x, w: convolution.conv1d(x, w, (DILATION, DILATION), DILATION), args)
    flops = 2 * TAPS * channels * channels * windows * samples
    activation = windows * samples * channels * jnp.dtype(dtype).itemsize
    return dict(report=report, flops=flops, passes=(report.bytes_accessed or 0) / activation)


def pallas_estimates(mesh) -> tuple[float, float, float]:
    """(XLA's product, Pallas declaring the true FLOPs, Pallas declaring 1000x) in seconds."""
    from jax.experimental import pallas as pl
    n, block = 128 * 2048, 2048

    def kernel(x_ref, w_ref, o_ref):
        o_ref[...] = jnp.dot(w_ref[...], x_ref[...], preferred_element_type=jnp.float32)

    def product(declared_flops):
        cost = pl.CostEstimate(flops=declared_flops, transcendentals=0,
                               bytes_accessed=2 * 4 * 128 * n)
        return lambda x, w: pl.pallas_call(
            kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), grid=(n // block,),
            in_specs=[pl.BlockSpec((128, block), lambda i: (0, i)),
                      pl.BlockSpec((128, 128), lambda i: (0, 0))],
            out_specs=pl.BlockSpec((128, block), lambda i: (0, i)),
            cost_estimate=cost)(x, w)

    args = compiler.shape_of((jax.ShapeDtypeStruct((128, n), jnp.float32),
                         jax.ShapeDtypeStruct((128, 128), jnp.float32)), mesh)
    flops = 2 * 128 * 128 * n
    return tuple(compiler.compile_program(f, args).estimated_seconds
                 for f in (lambda x, w: w @ x, product(flops), product(1000 * flops)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="v5e:2x2")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    record.add_flag(parser)
    args = parser.parse_args(argv)
    mesh = compiler.topology_mesh(args.topology, chips=1)
    chip = compiler.chip_of(mesh)
    frames = round(args.seconds * SAMPLE_RATE / vocoder.HOP)
    with record.results("tpu_ceilings", args.record):
        print(f"One kernel-3 convolution per residual stack, {args.windows} x {args.seconds:g} s, "
              f"one chip of {args.topology} (ridge {chip['peak_flops'] / chip['bandwidth']:.0f} "
              "FLOP/byte)\n")
        print("| channels | samples | precision | estimate ms | utilisation | traffic (passes) "
              "| ceiling at 2 passes |")
        print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
        weights, compiled = [], {"float32": [], "bf16": []}
        for channels, per_frame in stacks():
            samples = frames * per_frame
            weights.append((channels, per_frame * channels * channels))   # FLOPs per frame / 6
            for name, dtype in (("float32", jnp.float32), ("bf16", jnp.bfloat16)):
                m = one_convolution(mesh, args.windows, channels, samples, dtype)
                r = m["report"]
                if r.error or r.modelled_seconds is None:
                    raise SystemExit(f"{channels} channels, {name}: {r.error}")
                used = m["flops"] / r.modelled_seconds / chip["peak_flops"]
                compiled[name].append(used)
                print(f"| {channels} | {samples:,} | {name} | {r.modelled_seconds * 1e3:.2f} "
                      f"| {used:.0%} | {m['passes']:.1f} "
                      f"| {ceiling(channels, jnp.dtype(dtype).itemsize, chip):.0%} |", flush=True)
        total = sum(w for _, w in weights)
        print()
        for name, size in (("float32", 4), ("bf16", 2)):
            best = total / sum(w / ceiling(c, size, chip) for c, w in weights)
            now = total / sum(w / u for (_, w), u in zip(weights, compiled[name]))
            print(f"The four stacks' convolutions together, {name}: {now:.0%} of the peak as "
                  f"compiled, at most {best:.0%} with every convolution at 2 passes")
        xla, declared, inflated = pallas_estimates(mesh)
        print(f"\nA 128 x 128 x {128 * 2048:,} product: XLA's {xla * 1e3:.3f} ms; as a Pallas "
              f"kernel declaring its FLOPs {declared * 1e3:.3f} ms, declaring 1000x "
              f"{inflated * 1e3:.3f} ms (1000x the FLOPs at the peak: "
              f"{1000 * 2 * 128 * 128 * 128 * 2048 / chip['peak_flops'] * 1e3:.3f} ms): "
              "the estimate of a kernel is its declaration.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

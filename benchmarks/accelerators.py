r"""Every program users run, compiled for TPU topologies on this host, and run on a
local accelerator when there is one.

    python benchmarks/accelerators.py                          # v5e, every program
    python benchmarks/accelerators.py --topology v5e:2x2 v6e:2x2 --precision float32 bf16
    python benchmarks/accelerators.py --programs "train unet" "restore mode 0" --batch 8
    python benchmarks/accelerators.py --run                    # on a GPU (or TPU) machine

Ahead of time (needs ``pip install "libtpu==0.0.42.*"``; JAX's runtime stays on
the CPU): each program of :func:`vf_jax.aot.programs.paper_programs` (paper sizes:
batch 24 per chip, 3 s crops for the analysis networks, 0.5 s for the vocoder,
30 s restoration windows) is jitted over one chip of the topology and
compiled, with the XLA options its running code compiles it with
(:func:`vf_jax.compilation.options_for`: on a TPU the compiler's fast mode
unless the program opts out; ``--xla defaults`` for XLA's own, both for the
two side by side). The table gives the compile time, the time of 1,000
training steps at the compiler's estimate (what a training run's compile
time compares with), HBM per chip against what the chip has, FLOPs per
chip and step (the program as written, and in brackets as compiled for the
TPU, whose forms add some: :func:`vf_jax.aot.compiler.model_flops`),
the compiler's step-time estimate, examples (or audio seconds) per second per
chip at that estimate, and the utilisation of the chip's peak it implies (the
FLOPs as written over the estimate: useful work only). The last two columns:
the compiled program's memory traffic (``cost_analysis()["bytes accessed"]``)
and the roofline, the utilisation that traffic allows at the chip's HBM
bandwidth (:meth:`vf_jax.aot.compiler.Report.roofline`): a program whose roofline is
low is bound by memory, not by the matrix unit.

The estimate: ``cost_analysis()["optimal_seconds"]``. The TPU compiler counts
each operation it does not model as -1 s (FFTs above some lengths, some
custom calls); when the sum is negative, the table gives the modelled part
(the fraction above the next integer down, valid while it is under 1 s) and
the number of unmodelled operations.

``--run``: on a machine whose JAX backend is a GPU or a TPU, the same programs
run on real arrays on one device and are timed: a warm-up call, then the
median of ``--repeats`` calls, each ended by ``block_until_ready``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import record  # noqa: E402  (benchmarks/record.py)

os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def select(programs, names):
    if not names:
        return programs
    return [p for p in programs if any(p.name.startswith(n) for n in names)]


def build(args):
    """The chosen programs, each with the form of repeated layers to trace it in
    (``None``: the backend's choice) and the XLA options to compile it with."""
    from vf_jax.aot import programs
    out = []
    for precision in args.precision:
        bf16 = precision == "bf16"
        chosen = select(programs.paper_programs(bf16), args.programs)
        for p in chosen:
            if args.batch and not p.name.startswith("restore"):
                p.batch_per_chip = args.batch
        out += [(p, LOOPS[form], xla) for p in chosen for form in args.loops
                for xla in args.xla]
    return out


LOOPS = {"auto": None, "looped": True, "unrolled": False}
XLA = ("vf_jax", "defaults")


def traced(program, loops, xla="vf_jax"):
    """``program.name`` with its form and options, and the context to trace
    and compile it in."""
    import contextlib

    from vf_jax import backends, compilation
    name, context = program.name, contextlib.ExitStack()
    if loops is not None:
        name += f" ({'looped' if loops else 'unrolled'})"
        context.enter_context(backends.force_loops(loops))
    if xla == "defaults":
        name += " (XLA defaults)"
        context.enter_context(compilation.xla_defaults())
    return name, context


def ahead_of_time(args) -> int:
    from vf_jax.aot import compiler
    header = ("program", "topology", "batch/chip", "compile s", "1,000 steps s",
              "HBM GB / chip",
              "TFLOP/step (compiled)",
              "estimate ms", "unmodelled ops", "per s per chip", "utilisation",
              "HBM traffic GB", "roofline")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for topology in args.topology:
        mesh = compiler.topology_mesh(topology, chips=1)
        chip = compiler.chip_of(mesh)
        for program, loops, xla in build(args):
            name, form = traced(program, loops, xla)
            with form:
                report = program.compile(mesh)
            written = compiler.model_flops(program.fn, program.arguments(mesh))
            if report.error:
                row = (name, topology, program.batch_per_chip,
                       f"{report.compile_seconds:.0f}", "", "does not compile", "", "", "",
                       "", report.error[:80], "", "")
            else:
                seconds, unmodelled = report.modelled_seconds, report.unmodelled_ops
                rate = (program.batch_per_chip / seconds if seconds else float("nan"))
                unit = " audio s" if program.name.startswith("restore") else " ex"
                rate_text = (f"{rate * program.audio_seconds:.0f}{unit}" if unit == " audio s"
                             else f"{rate:.0f}{unit}")
                util = (written / seconds / chip["peak_flops"]
                        if seconds and chip and written else float("nan"))
                steps = ("" if program.name.startswith("restore") or seconds is None
                         else f"{seconds * 1000:.0f}")
                row = (name, topology, program.batch_per_chip,
                       f"{report.compile_seconds:.0f}", steps,
                       f"{report.hbm_bytes / 1e9:.2f} / {chip.get('hbm', float('nan')) / 1e9:.0f}",
                       f"{(written or 0) / 1e12:.2f} ({(report.flops or 0) / 1e12:.2f})",
                       f"{seconds * 1e3:.1f}" if seconds is not None else "",
                       unmodelled, rate_text, f"{util:.0%}",
                       f"{(report.bytes_accessed or 0) / 1e9:.1f}",
                       f"{report.roofline(written, chip) or float('nan'):.0%}")
            print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
    return 0


def run_locally(args) -> int:
    """Time every program on the first local device (GPU or TPU)."""
    import jax
    import numpy as np

    from vf_jax import compilation
    from vf_jax.training import parallel
    backend = jax.default_backend()
    if backend == "cpu" and not args.allow_cpu:
        print("--run needs a GPU or TPU backend (here: cpu); the ahead-of-time table "
              "needs no accelerator", file=sys.stderr)
        return 1
    mesh = parallel.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    print(f"device: {jax.devices()[0].device_kind}")
    print("| program | batch | compile s | median ms | per s | real-time factor |")
    print("|---|---|---|---|---|---|")
    for program, loops, xla in build(args):
        name, form = traced(program, loops, xla)
        shapes = program.arguments(mesh)

        def concrete(s):
            if np.issubdtype(s.dtype, np.floating):
                x = (0.1 * rng.standard_normal(s.shape)).astype(s.dtype)
            elif s.dtype == np.uint32:
                x = rng.integers(0, 2 ** 31, s.shape).astype(np.uint32)
            else:      # lengths: the whole crop
                x = np.full(s.shape, int(program.audio_seconds * 44100), s.dtype)
            return jax.device_put(x, s.sharding)
        start = time.perf_counter()
        with form:
            lowered = jax.jit(program.fn, donate_argnums=program.donate_argnums).lower(*shapes)
            compiled = lowered.compile(compiler_options=compilation.compiler_options())
        compile_s = time.perf_counter() - start
        args_ = jax.tree_util.tree_map(concrete, shapes)
        times = []
        for i in range(args.repeats + 1):
            call_args = args_ if not program.donate_argnums else jax.tree_util.tree_map(
                lambda x: x.copy(), args_)
            jax.block_until_ready(call_args)
            start = time.perf_counter()
            jax.block_until_ready(compiled(*call_args))
            if i:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rate = program.batch_per_chip / median
        audio = rate * program.audio_seconds
        print(f"| {name} | {program.batch_per_chip} | {compile_s:.0f} | "
              f"{median * 1e3:.1f} | {rate:.2f} ex | {audio:.1f}x |", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", nargs="+", default=["v5e:2x2"],
                        help="TPU topologies (one chip of each is compiled for)")
    parser.add_argument("--programs", nargs="*", default=None,
                        help="program names or prefixes (default: all)")
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=("float32", "bf16"))
    parser.add_argument("--batch", type=int, default=None,
                        help="batch per chip instead of the paper's 24")
    parser.add_argument("--run", action="store_true",
                        help="run and time on the local GPU/TPU instead of compiling for TPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--allow-cpu", action="store_true",
                        help="with --run: time on the CPU too (to try the script)")
    parser.add_argument("--loops", nargs="+", default=["auto"], choices=tuple(LOOPS),
                        help="repeated layers (the vocoder's residual stacks) traced as one "
                             "loop body, unrolled, or as the backend chooses (auto); several: "
                             "each program in each form, side by side. A loop's body is "
                             "priced once by the compiler's cost analysis: compare a looped "
                             "program's estimate with its unrolled twin's")
    parser.add_argument("--xla", nargs="+", default=["vf_jax"], choices=XLA,
                        help="XLA options: those vf_jax compiles with on the target "
                             "(vf_jax.compilation.options_for), XLA's defaults, or both, "
                             "side by side")
    parser.add_argument("--list", action="store_true", help="list the programs and stop")
    record.add_flag(parser)
    args = parser.parse_args(argv)
    if args.list:
        for p, loops, xla in build(args):
            print(traced(p, loops, xla)[0])
        return 0
    if not args.run:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    with record.results("accelerators-run" if args.run else "accelerators", args.record):
        return run_locally(args) if args.run else ahead_of_time(args)


if __name__ == "__main__":
    sys.exit(main())

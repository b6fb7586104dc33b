r"""Where a restore program's compile time goes: its parts compiled alone for
one v5e chip, ahead of time on this host, in the TPU's forms.

    python benchmarks/compile_parts.py                      # rows of 4 x 1024 frames
    python benchmarks/compile_parts.py --frames 576 --rows 4 --parts frontend unet
    python benchmarks/compile_parts.py --loops looped unrolled --record

The parts of :func:`vf_jax.restoration.networks.restore_rows`: the front end
(each row's mel spectrogram at its own length), the released analysis
network's BiGRU denoiser and its ResUNet, the published vocoder; then the
whole program. ``--loops``: the repeated layers (the vocoder's residual
stacks, the ResUNet's repeated blocks) as loops, unrolled, or as the TPU's
forms choose (auto). A looped program's estimate prices each loop body once
(``cost_analysis`` counts a ``while`` body once): compare it with the
unrolled twin's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import record  # noqa: E402  (benchmarks/record.py)

os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

PARTS = ("frontend", "denoiser", "unet", "vocoder", "whole")
LOOPS = {"auto": None, "looped": True, "unrolled": False}


def part_program(part: str, rows: int, frames: int):
    """``(fn, arguments as ShapeDtypeStructs: replicated first, then the batch)``."""
    import jax
    import jax.numpy as jnp

    from vf_jax.aot import programs
    from vf_jax.audio import mel as mel_lib
    from vf_jax.models import analysis
    from vf_jax.restoration import networks
    from vf_jax.restoration.buckets import FRONT_END, HOP
    S = jax.ShapeDtypeStruct
    samples = S((rows, frames * HOP), jnp.float32)
    lengths = S((rows,), jnp.int32)
    if part == "frontend":
        return ((lambda wav, n: mel_lib.mel_spectrogram(wav, FRONT_END, frames, n)[0]), (),
                (samples, lengths))
    if part in ("denoiser", "unet"):
        module = analysis.Denoiser() if part == "denoiser" else analysis.unet(1.0)
        shape = (rows, frames, 128) + ((2,) if part == "unet" else ())
        template = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                      jnp.zeros((1, 64) + shape[2:])))
        return ((lambda v, x, n: module.apply(v, x, valid=n)), (template,),
                (S(shape, jnp.float32), lengths))
    variables = programs.restore_variables("released", ())
    if part == "vocoder":
        return ((lambda v, mel, n: networks.synthesise(v["vocoder"]["params"], mel, n)),
                (variables,), (S((rows, frames, 128), jnp.float32), lengths))
    program = programs.restore_rows(rows, frames=frames)
    return program.fn, (variables,), (samples, lengths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--loops", nargs="+", default=["auto"], choices=tuple(LOOPS))
    record.add_flag(parser)
    args = parser.parse_args(argv)

    from vf_jax import backends
    from vf_jax.aot import compiler
    mesh = compiler.topology_mesh("v5e:2x2", chips=1)
    with record.results("compile_parts", args.record):
        print(f"\nRows of {args.rows} x {args.frames} frames, float32, one v5e chip.\n")
        print("| part | layers | compile s | HBM GB | estimate ms | unmodelled ops |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for part in args.parts:
            for form in args.loops:
                fn, replicated, batch = part_program(part, args.rows, args.frames)
                arguments = (tuple(compiler.shape_of(x, mesh) for x in replicated)
                             + tuple(compiler.shape_of(x, mesh, sharded=True) for x in batch))
                loops = LOOPS[form]
                with (backends.force_loops(loops) if loops is not None
                      else contextlib.nullcontext()):
                    report = compiler.compile_program(fn, arguments)
                estimate = report.modelled_seconds
                print(f"| {part} | {form} | {report.compile_seconds:.1f} | "
                      f"{(report.hbm_bytes or 0) / 1e9:.2f} | "
                      f"{estimate * 1e3 if estimate else float('nan'):.1f} | "
                      f"{report.unmodelled_ops} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

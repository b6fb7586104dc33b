"""CPU convolution kernels: XLA's defaults against ``vf_jax.compilation``'s
options (YNNPACK fusions off), side by side in one run.

Times the ResUNet's 3x3 convolutions at each level's shape (a 20 s window, 2048
frames), the vocoder's 1-D convolutions, and the whole analysis and vocoder
networks with seeded random weights, each compiled both ways; prints GFLOP/s
and the ratio. The outputs of both are compared too (they differ only by
float32 rounding).

Usage: ``python benchmarks/conv_kernels.py [--frames 2048] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vf_jax import compilation
from vf_jax.models.analysis import ReleasedAnalysis  # noqa: E402
from vf_jax.models.vocoder import TFGANGenerator  # noqa: E402
from vf_jax.restoration import buckets  # noqa: E402

import record  # noqa: E402  (benchmarks/record.py)


def best_time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def both(fun, args, repeats: int, static=()):
    """(seconds with XLA defaults, seconds with our options, max abs difference)."""
    default = jax.jit(fun, static_argnames=static)
    ours = jax.jit(fun, static_argnames=static, compiler_options=compilation.CPU_OPTIONS)
    diff = float(jnp.max(jnp.abs(default(*args) - ours(*args))))
    return best_time(default, args, repeats), best_time(ours, args, repeats), diff


def conv(dims: str):
    def apply(x, w):
        pad = [((w.shape[i] - 1) // 2,) * 2 for i in range(w.ndim - 2)]
        return jax.lax.conv_general_dilated(x, w, (1,) * (w.ndim - 2), pad,
                                            dimension_numbers=dims)
    return apply


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    record.add_flag(ap)
    args = ap.parse_args()
    if jax.default_backend() != "cpu":
        raise SystemExit("this benchmark is about XLA's CPU backend")
    rng = np.random.default_rng(0)
    rows = []

    t, f = args.frames, 127
    for level, ch in enumerate((32, 64, 128, 256, 384, 384)):
        shape = (1, t >> level, max(f >> level, 1), ch)
        x = jnp.asarray(rng.standard_normal(shape, np.float32))
        w = jnp.asarray(rng.standard_normal((3, 3, ch, ch), np.float32) * 0.05)
        flops = 2 * 9 * ch * ch * np.prod(shape[1:3])
        rows.append((f"ResUNet 3x3 conv {shape[1]}x{shape[2]}x{ch}", flops,
                     *both(conv(("NHWC", "HWIO", "NHWC")), (x, w), args.repeats)))
    samples = t * buckets.HOP
    for ch, rate in ((64, 1), (128, 3), (256, 9), (512, 63)):
        x = jnp.asarray(rng.standard_normal((1, samples // rate, ch), np.float32))
        w = jnp.asarray(rng.standard_normal((3, ch, ch), np.float32) * 0.05)
        flops = 2 * 3 * ch * ch * (samples // rate)
        rows.append((f"vocoder k3 conv {samples // rate}x{ch}", flops,
                     *both(conv(("NWC", "WIO", "NWC")), (x, w), args.repeats)))

    key = jax.random.PRNGKey(0)
    mel = jnp.asarray(rng.standard_normal((1, t, 128), np.float32) - 3.0)
    analysis = ReleasedAnalysis()
    variables = analysis.init(key, mel[:, :64])
    rows.append((f"analysis network, {t} frames", None,
                 *both(lambda v, m: analysis.apply(v, m), (variables, mel), args.repeats)))
    feats = jnp.clip(mel, -4, 4)
    params = TFGANGenerator().init(key, feats[:, :8])
    rows.append((f"vocoder network, {t} frames", None,
                 *both(lambda p, m: TFGANGenerator().apply(p, m), (params, feats), args.repeats)))

    with record.results("conv_kernels", args.record):
        print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}, options "
              f"{compilation.CPU_OPTIONS}\n")
        print("| operation | XLA defaults (ms) | vf_jax options (ms) | speed-up | GFLOP/s (ours) "
              "| max abs difference |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, flops, default, ours, diff in rows:
            rate = f"{flops / ours / 1e9:.0f}" if flops else "-"
            print(f"| {name} | {default * 1e3:.1f} | {ours * 1e3:.1f} | "
                  f"{default / ours:.2f} | {rate} | {diff:.1e} |")


if __name__ == "__main__":
    main()

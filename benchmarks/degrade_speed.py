"""GSR degradation throughput: on device (jit + vmap, one batch) against the
same pipeline per example on the host with numpy/scipy, as the original's data
loader does it (``sosfiltfilt``, ``resample_poly``, an STFT, ``lfilter``,
``scipy.signal.convolve``), in one run.

Both draw every example's parameters from the original's distributions
(:func:`vf_jax.audio.degradations.gsr_config`). Prints degraded 3 s examples per
second for each and the ratio.

Usage: ``python benchmarks/degrade_speed.py [--batch 24] [--seconds 3] [--batches 3]``
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from scipy import signal as sps

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vf_jax.audio import degradations as deg  # noqa: E402
from vf_jax.audio import filters  # noqa: E402
from vf_jax.audio import synthetic  # noqa: E402

import record  # noqa: E402  (benchmarks/record.py)

SR = 44100


# --------------------------------------------------------- host pipeline ---

def host_lowpass(x, kind, cutoff, order):
    wn = cutoff / (SR / 2)
    if kind in filters.IIR_FAMILIES:
        design = {"butter": lambda: sps.butter(order, wn, output="sos"),
                  "cheby1": lambda: sps.cheby1(order, 0.1, wn, output="sos"),
                  "ellip": lambda: sps.ellip(order, 0.1, 60, wn, output="sos"),
                  "bessel": lambda: sps.bessel(order, wn, output="sos")}[kind]
        return sps.sosfiltfilt(design(), x)
    if kind == "stft":
        low = int(wn * SR)
        return sps.resample_poly(sps.resample_poly(x, low, SR), SR, low)[:len(x)]
    _, _, spec = sps.stft(x, SR, nperseg=2048, noverlap=2048 - 441, boundary="even")
    spec[int(1025 * wn):] = 0
    return sps.istft(spec, SR, nperseg=2048, noverlap=2048 - 441)[1][:len(x)]


def host_degrade(rng, speech, noise, rir):
    x = speech.astype(np.float64)
    if rng.uniform() < 0.25:
        x = sps.lfilter(*sps.butter(2, rng.uniform(4000, 22000) / (SR / 2)), x)
    if rng.uniform() < 0.2:
        t = np.max(np.abs(x)) / rng.uniform(1, 11)
        x = np.clip(x, -t, t)
    if rng.uniform() < 0.3:
        x = sps.convolve(x, rir)[:len(x)]
        if np.max(np.abs(x)) > 0.99:
            x = x / np.max(np.abs(x)) * 0.98
    kind = filters.BAND_LIMITS[rng.integers(len(filters.BAND_LIMITS))]
    cutoff, order = rng.uniform(750, 22050), int(rng.integers(2, 10))
    x = host_lowpass(x, kind, cutoff, order)
    if rng.uniform() < 0.5:
        x = host_lowpass(x, "stft", cutoff, order)
    n = noise.astype(np.float64)
    if rng.uniform() < 0.5:
        n = host_lowpass(n, kind, cutoff, order)
        if rng.uniform() < 1 / 3:
            n = host_lowpass(n, "stft", cutoff, order)
    common = max(np.max(np.abs(speech)), np.max(np.abs(x)))
    target, x = speech / common, x / common
    n = n / np.max(np.abs(n))
    if np.mean(np.abs(x)) > 0.02:
        n = n * np.mean(np.abs(x)) / np.mean(np.abs(n))
    n = n / 10 ** (rng.uniform(-5, 40) / 20)
    noisy = x + n
    scale = rng.uniform(0.3, 1.0) / max(np.max(np.abs(v)) for v in (noisy, x, n, target))
    return noisy * scale, target * scale


# ------------------------------------------------------------------- run ---

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batches", type=int, default=3, help="timed device batches")
    ap.add_argument("--host-examples", type=int, default=24)
    record.add_flag(ap)
    args = ap.parse_args()

    import jax
    rng = np.random.default_rng(0)
    samples = int(args.seconds * SR)
    speech = np.stack([synthetic.speech_like(args.seconds, seed=i) for i in range(args.batch)])
    noise = np.stack([synthetic.pink_noise(samples, rng) for _ in range(args.batch)])
    rirs = [synthetic.room_impulse_response(rng) for _ in range(args.batch)]
    rir_len = max(len(r) for r in rirs)
    rir = np.stack([np.pad(r, (0, rir_len - len(r))) for r in rirs])

    degrade = deg.gsr_degrader()
    keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
    args_dev = [jax.device_put(a) for a in (keys, speech, noise, rir)]
    start = time.perf_counter()
    jax.block_until_ready(degrade(*args_dev))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(args.batches):
        keys = jax.random.split(jax.random.PRNGKey(i + 1), args.batch)
        jax.block_until_ready(degrade(keys, *args_dev[1:]))
    device_rate = args.batch * args.batches / (time.perf_counter() - start)

    host_rng = np.random.default_rng(1)
    start = time.perf_counter()
    for i in range(args.host_examples):
        b = i % args.batch
        host_degrade(host_rng, speech[b], noise[b], rirs[b])
    host_rate = args.host_examples / (time.perf_counter() - start)

    with record.results("degrade_speed", args.record):
        print(f"\njax {jax.__version__} on {jax.devices()[0].platform}; {args.seconds:g} s "
              f"examples, batch {args.batch} (first call with compilation: {compile_s:.1f} s)\n")
        print("| pipeline | examples/s |")
        print("| --- | ---: |")
        print(f"| on device: jit + vmap, batch {args.batch} | {device_rate:.2f} |")
        print(f"| host: numpy/scipy per example | {host_rate:.2f} |")
        print(f"| ratio device / host | {device_rate / host_rate:.2f} |")


if __name__ == "__main__":
    main()

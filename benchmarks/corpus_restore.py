r"""Restoring a folder: the batched path against the per-file path, side by
side in one run, and the TPU's estimate of hours of audio per chip-hour.

    python benchmarks/corpus_restore.py                  # 200 files of 0.5-15 s
    python benchmarks/corpus_restore.py --files 40 --record
    python benchmarks/corpus_restore.py --tpu            # also compile for one v5e chip

The files: synthetic speech (``vf_jax.audio.synthetic.speech_like``) of
0.5-15 s at 44.1, 22.05, 16 and 48 kHz, one in ten stereo, as FLAC. The
networks: the released analysis network and the published vocoder with seeded
random weights (the speed does not depend on the values). The batched path is
``python -m vf_jax restore -i DIR -o OUT`` (windows of many files in shared
batches, reading ahead and writing in threads, the manifest); the per-file path
reads, restores (``Restorer.restore``) and writes each file in turn, as the
command did before batching. Each runs in a fresh process with an empty
compilation cache of its own, so compiling counts as in a first run. "Cores
busy" is the process's CPU seconds over its wall seconds: where it is near the
host's core count, the per-file path already keeps every core computing and
batching cannot speed the computation up, only share compilation and overlap
reading and writing.

With ``--tpu``: the program a folder's batches run
(:func:`vf_jax.aot.programs.restore_rows`) compiled ahead of time for one chip of
v5e at ``--tpu-rows`` rows of ``--tpu-seconds`` s, float32 and bf16; hours of
audio per chip-hour = rows x seconds / the compiler's step-time estimate.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)

RATES = (44100, 22050, 16000, 48000)


def make_files(folder: pathlib.Path, count: int, shortest: float, longest: float) -> float:
    """``count`` files under ``folder``; returns their total seconds."""
    from vf_jax.audio import io as audio_io
    from vf_jax.audio.synthetic import speech_like
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(count):
        seconds = float(rng.uniform(shortest, longest))
        x = speech_like(seconds, seed=i)
        rate = RATES[i % len(RATES)]
        if rate != 44100:
            x = audio_io.resample(x[:, None], 44100, rate)[:, 0]
        if i % 10 == 9:
            x = np.stack([x, 0.7 * x], axis=1)
        sub = folder / f"speaker{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        audio_io.write_audio(str(sub / f"utt{i:04d}.flac"), x, rate, "PCM_16")
        total += seconds
    return total


PER_FILE = """
import os, sys, time
start = time.perf_counter()
from vf_jax.audio import io as audio_io
from vf_jax.audio.io import find_audio_files
from vf_jax.compilation import enable_compilation_cache
from vf_jax.restoration.restorer import Restorer
enable_compilation_cache()
inp, out, weights = sys.argv[1:4]
restorer = Restorer.from_folder(weights)
for rel in find_audio_files(inp):
    audio, rate = audio_io.read_audio(os.path.join(inp, rel))
    dst = os.path.join(out, os.path.splitext(rel)[0] + ".wav")
    audio_io.write_audio(dst, restorer.restore(audio, rate), 44100)
print("SECONDS", time.perf_counter() - start)
"""

BATCHED = """
import sys, time
start = time.perf_counter()
from vf_jax.cli import main
inp, out, weights, batch = sys.argv[1:5]
status = main(["restore", "-i", inp, "-o", out, "--weights", weights, "--quiet",
               *(["--batch-size", batch] if batch != "default" else [])])
assert status == 0, status
print("SECONDS", time.perf_counter() - start)
"""


def timed_process(code: str, args: list[str], cache: pathlib.Path) -> tuple[float, float]:
    """(wall seconds in the process, cores busy: its CPU seconds / its wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
               VF_JAX_COMPILATION_CACHE=str(cache), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=str(ROOT),
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(done.stdout.split("SECONDS")[-1]), cpu / wall


def tpu_estimates(rows: int, seconds: float) -> list[tuple]:
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from vf_jax.aot import compiler, programs
    mesh = compiler.topology_mesh("v5e:2x2", chips=1)
    out = []
    for bf16 in (False, True):
        program = programs.restore_rows(rows, seconds, bf16=bf16)
        report = program.compile(mesh)
        step = report.modelled_seconds
        hours = rows * seconds / step if step else float("nan")   # audio s per s = h per h
        out.append((program.name, report.compile_seconds, report.hbm_bytes / 1e9,
                    step * 1e3 if step else float("nan"), hours))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--shortest", type=float, default=0.5)
    ap.add_argument("--longest", type=float, default=15.0)
    ap.add_argument("--batch-size", default="default", help="rows per batch (default: per backend)")
    ap.add_argument("--tpu", action="store_true", help="also compile for v5e and estimate")
    ap.add_argument("--tpu-rows", type=int, default=4)
    ap.add_argument("--tpu-seconds", type=float, default=10.0)
    record.add_flag(ap)
    args = ap.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import jax

    from vf_jax import testing
    with tempfile.TemporaryDirectory(prefix="vf_jax_corpus_") as tmp:
        tmp = pathlib.Path(tmp)
        total = make_files(tmp / "in", args.files, args.shortest, args.longest)
        testing.write_seeded_weights(str(tmp / "weights"), "released")
        started = time.perf_counter()
        per_file, per_file_busy = timed_process(PER_FILE, [str(tmp / "in"), str(tmp / "per_file"),
                                            str(tmp / "weights")], tmp / "cache_per_file")
        batched, batched_busy = timed_process(BATCHED, [str(tmp / "in"), str(tmp / "batched"),
                                          str(tmp / "weights"), args.batch_size],
                                tmp / "cache_batched")
        wall = time.perf_counter() - started
    estimates = tpu_estimates(args.tpu_rows, args.tpu_seconds) if args.tpu else []

    with record.results("corpus_restore", args.record):
        print(f"\n{args.files} files, {total:.0f} s of audio ({args.shortest:g}-{args.longest:g} s "
              f"each); jax {jax.__version__} on {jax.devices()[0].platform}, "
              f"{jax.local_device_count()} device(s); both paths {wall:.0f} s in all\n")
        print(f"| path | seconds | audio s/s | cores busy (of {os.cpu_count()}) |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| per file (read, restore, write, in turn) | {per_file:.1f} | "
              f"{total / per_file:.2f} | {per_file_busy:.2f} |")
        print(f"| batched (`python -m vf_jax restore -i DIR`) | {batched:.1f} | "
              f"{total / batched:.2f} | {batched_busy:.2f} |")
        print(f"| ratio batched / per file (audio s/s) | | {per_file / batched:.2f} | |")
        if estimates:
            print("\n| program (one v5e chip) | compile s | HBM GB | estimate ms "
                  "| hours of audio per chip-hour |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for name, compile_s, hbm, ms, hours in estimates:
                print(f"| {name} | {compile_s:.0f} | {hbm:.2f} | {ms:.1f} | {hours:.0f} |")


if __name__ == "__main__":
    main()

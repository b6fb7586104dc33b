r"""Restoring a folder: the batched path against the per-file path, side by
side in one run, and the TPU's estimate of hours of audio per chip-hour.

    python benchmarks/corpus_restore.py                  # 200 files of 0.5-15 s
    python benchmarks/corpus_restore.py --files 40 --record
    python benchmarks/corpus_restore.py --tpu            # also time to result on a v5e chip
    python benchmarks/corpus_restore.py --tpu-only --record --record-costs

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

With ``--tpu`` (``--tpu-only``: nothing else): time to result on one v5e
chip for the reference corpus (``--tpu-files`` files of uniformly random
length in ``--tpu-shortest``-``--tpu-longest`` s, default 2,000 of 1-15 s):
the programs ``restore --plan`` says restoring it compiles on a TPU
(:func:`vf_jax.aot.programs.restore_rows` at each rung of the TPU's ladder),
each compiled ahead of time here in the TPU's forms (looped layers) and, for
the compiler's estimate of every loop iteration, as an unrolled twin; compile
seconds plus the estimate of computing every call, against the figures
recorded before the coarse ladder. ``--record-costs`` writes the programs'
figures where ``restore --plan`` reads them
(``vf_jax/restoration/program_costs.json``).
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


# Before this tool's coarse ladder and loops (recorded 2026-12-06, benchmarks/README.md
# and tpu-notes): restore rows of 4 compiled for one v5e chip on this host in 220 s at
# 2 s and 285 s at 10 s, linear in between; the compiler's estimate gave 161 hours of
# audio per chip-hour (4 x 10 s, float32).
BEFORE = {"compile": ((256, 220.0), (1024, 285.0)), "audio_hours_per_chip_hour": 161.0}


def before_compile_seconds(frames: int) -> float:
    (f0, c0), (f1, c1) = BEFORE["compile"]
    return c0 + (c1 - c0) * (frames - f0) / (f1 - f0)


def time_to_result(files: int, shortest: float, longest: float, twins: bool) -> dict:
    """The programs restoring the reference corpus on one v5e chip needs, each
    compiled here (the forms a TPU takes: looped layers; with ``twins`` also
    unrolled, whose estimate prices the loops' every iteration), and the sums."""
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from vf_jax import backends
    from vf_jax.aot import compiler, programs
    from vf_jax.restoration import batched
    from vf_jax.restoration import plan as plan_lib
    mesh = compiler.topology_mesh("v5e:2x2", chips=1)
    corpus = plan_lib.reference_corpus(files, shortest, longest)
    rows = batched.ROWS_PER_DEVICE["tpu"]
    after = plan_lib.plan_inputs(corpus, backend="tpu", rows=rows, costs=[])
    before = plan_lib.plan_inputs(corpus, backend="tpu", rows=rows, ladder="fine", costs=[])
    measured = []
    for p in after["programs"]:
        program = programs.restore_rows(rows, frames=p["frames"])
        looped = program.compile(mesh)
        twin = None
        if twins:
            with backends.force_loops(False):
                twin = programs.restore_rows(rows, frames=p["frames"]).compile(mesh)
        per_call = (twin or looped).modelled_seconds
        measured.append({**p, "compile_looped": looped.compile_seconds,
                         "compile_unrolled": twin.compile_seconds if twin else None,
                         "hbm_gb": looped.hbm_bytes / 1e9,
                         "hbm_unrolled_gb": twin.hbm_bytes / 1e9 if twin else None,
                         "per_call_looped": looped.modelled_seconds, "per_call": per_call,
                         "compute": per_call * p["calls"], "priced_by": "unrolled twin"
                         if twin else "looped (loop bodies priced once)"})
    rate = BEFORE["audio_hours_per_chip_hour"]
    before_computed = before["audio_seconds"] * (1 + before["padding_fraction"])
    return {"corpus": (files, shortest, longest, after["audio_seconds"]), "after": after,
            "measured": measured, "before": before,
            "before_compile": sum(before_compile_seconds(p["frames"])
                                  for p in before["programs"]),
            "before_compute": before_computed / rate}


def write_costs(result: dict) -> str:
    """The measured programs into vf_jax/restoration/program_costs.json
    (what ``restore --plan`` reads)."""
    import datetime
    import json

    from vf_jax.restoration import plan as plan_lib
    rows = [{"chip": plan_lib.TPU_CHIP, "precision": "float32", "mode": 0, "rows": m["rows"],
             "frames": m["frames"], "kind": "released",
             "compile_seconds": round(m["compile_looped"], 1),
             "estimate_seconds": round(m["per_call"], 5), "hbm_gb": round(m["hbm_gb"], 2)}
            for m in result["measured"]]
    note = ("Restore programs compiled ahead of time for one v5e chip on a 2-core host by "
            "benchmarks/corpus_restore.py --tpu --record-costs on "
            f"{datetime.date.today().isoformat()}: compile_seconds is the compile time "
            "here; estimate_seconds the compiler's estimate of one call (from the unrolled "
            "twin, which prices every iteration of the loops).")
    with open(plan_lib.COSTS_FILE, "w") as f:
        json.dump({"note": note, "programs": rows}, f, indent=1)
        f.write("\n")
    return plan_lib.COSTS_FILE


def print_time_to_result(result: dict) -> None:
    files, shortest, longest, audio = result["corpus"]
    after, before = result["after"], result["before"]
    print(f"\nTime to result on one v5e chip: the reference corpus, {files} files of "
          f"uniformly random length in {shortest:g}-{longest:g} s ({audio / 3600:.2f} h of "
          "audio; `vf_jax.restoration.plan.reference_corpus`), mode 0, float32, rows of "
          f"{after['programs'][0]['rows']}, the released analysis network and the published "
          "vocoder. Compile: seconds on this host; compute: the compiler's estimate.\n")
    print("| program (rows x frames) | seconds | files | calls | padding | compile s looped "
          "| compile s unrolled | HBM GB | estimate ms per call | compute s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m in result["measured"]:
        unrolled = f"{m['compile_unrolled']:.0f}" if m["compile_unrolled"] else "-"
        print(f"| {m['rows']} x {m['frames']} | {m['seconds']:.2f} | {m['files']} | "
              f"{m['calls']} | {m['padding_fraction']:.0%} | {m['compile_looped']:.0f} | "
              f"{unrolled} | {m['hbm_gb']:.2f} | {m['per_call'] * 1e3:.1f} | "
              f"{m['compute']:.0f} |")
    compile_s = sum(m["compile_looped"] for m in result["measured"])
    compute_s = sum(m["compute"] for m in result["measured"])
    print("\n| | ladder | programs | padding | compile s | compute s | time to result |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| before (recorded figures, interpolated) | fine | {len(before['programs'])} | "
          f"{before['padding_fraction']:.0%} | {result['before_compile']:.0f} | "
          f"{result['before_compute']:.0f} | "
          f"{(result['before_compile'] + result['before_compute']) / 60:.1f} min |")
    print(f"| now (measured) | {after['ladder']} | {len(after['programs'])} | "
          f"{after['padding_fraction']:.0%} | {compile_s:.0f} | {compute_s:.0f} | "
          f"{(compile_s + compute_s) / 60:.1f} min |")
    print(f"\nPriced by: {result['measured'][0]['priced_by']}. Before: "
          f"{BEFORE['compile']} (frames, compile s) and "
          f"{BEFORE['audio_hours_per_chip_hour']:g} audio hours per chip-hour.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--shortest", type=float, default=0.5)
    ap.add_argument("--longest", type=float, default=15.0)
    ap.add_argument("--batch-size", default="default", help="rows per batch (default: per backend)")
    ap.add_argument("--tpu", action="store_true",
                    help="also the time to result on one v5e chip (compiled here)")
    ap.add_argument("--tpu-only", action="store_true", help="only the TPU's time to result")
    ap.add_argument("--tpu-files", type=int, default=2000)
    ap.add_argument("--tpu-shortest", type=float, default=1.0)
    ap.add_argument("--tpu-longest", type=float, default=15.0)
    ap.add_argument("--no-twins", action="store_true",
                    help="do not compile the unrolled twins (quicker; loop bodies then "
                         "priced once)")
    ap.add_argument("--record-costs", action="store_true",
                    help="write the TPU figures into vf_jax/restoration/program_costs.json")
    record.add_flag(ap)
    args = ap.parse_args()
    if args.tpu_only:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        result = time_to_result(args.tpu_files, args.tpu_shortest, args.tpu_longest,
                                not args.no_twins)
        with record.results("time_to_result", args.record):
            print_time_to_result(result)
        if args.record_costs:
            print("wrote", write_costs(result))
        return
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
    result = (time_to_result(args.tpu_files, args.tpu_shortest, args.tpu_longest,
                             not args.no_twins) if args.tpu else None)

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
    if result is not None:
        with record.results("time_to_result", args.record):
            print_time_to_result(result)
        if args.record_costs:
            print("wrote", write_costs(result))


if __name__ == "__main__":
    main()

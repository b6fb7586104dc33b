"""Restoration speed: vf_jax against the original ``voicefixer`` package, same
machine, same inputs, one run.

Both sides get the same seeded random weights (the compute does not depend on
the values): the original's checkpoints are written into a temporary HOME and
converted for vf_jax. For 10 s and 60 s of audio it times

- the whole process (``python -m vf_jax restore`` / the original's
  ``VoiceFixer().restore``: start, imports, loading, compiling, reading,
  restoring, writing), vf_jax with an empty and with a filled compilation cache;
- the steady state in one process (a second call on the same input).

With ``--folder``: a folder of 12 short files (0.5-12 s, cut from the shipped
speech clip, repeated where longer; 8-48 kHz, one stereo), restored by
``python -m vf_jax restore -i DIR -o OUT`` in a fresh process (empty and
filled compilation cache) against the original's own loop over the same files
in one process (``VoiceFixer().restore`` per file, the model loaded once).

Usage: ``python benchmarks/restore_speed.py [--seconds 10 60] [--repeats 1] [--folder]``
(needs requirements-test.txt and requirements-oracle.txt).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)


def signal(seconds: float) -> np.ndarray:
    from vf_jax.audio.synthetic import voiced_signal
    return voiced_signal(seconds, seed=1)


FOLDER = ((0.5, 16000, 1), (1.2, 44100, 1), (2.0, 22050, 1), (2.7, 48000, 1),
          (3.3, 8000, 1), (4.1, 44100, 2), (5.0, 16000, 1), (6.2, 44100, 1),
          (7.4, 24000, 1), (8.8, 44100, 1), (10.3, 32000, 1), (12.0, 44100, 1))


def write_folder(folder: pathlib.Path) -> float:
    """The ``--folder`` files; returns their seconds of audio."""
    from vf_jax.audio import io as audio_io
    from vf_jax.data.clip import load_clip
    clip = load_clip()
    folder.mkdir(parents=True)
    for i, (seconds, rate, channels) in enumerate(FOLDER):
        n = int(seconds * 44100)
        x = np.tile(clip, -(-n // len(clip)))[i * 4410:i * 4410 + n]
        x = audio_io.resample(x[:, None], 44100, rate)
        if channels == 2:
            x = np.concatenate([x, 0.8 * x], axis=1)
        sf.write(folder / f"utt{i:02d}.wav", x, rate, subtype="PCM_16")
    return sum(seconds for seconds, _, _ in FOLDER)


ORIGINAL_LOOP = """
import os, sys
from voicefixer import VoiceFixer
inp, out = sys.argv[1:3]
fixer = VoiceFixer()
for name in sorted(os.listdir(inp)):
    fixer.restore(os.path.join(inp, name), os.path.join(out, name), mode=0)
"""


def folder_rows(work: pathlib.Path, weights_dir: pathlib.Path, env: dict,
                repeats: int) -> list:
    audio = write_folder(work / "folder")
    (work / "folder_orig").mkdir()
    cold, warm, orig = [], [], []
    for r in range(repeats):
        cache = work / f"jax_cache_folder_{r}"
        cmd = [sys.executable, "-m", "vf_jax", "restore", "--weights", str(weights_dir),
               "-i", str(work / "folder"), "-o", str(work / f"folder_ours_{r}"), "--quiet"]
        cold.append(run(cmd, dict(env, VF_JAX_COMPILATION_CACHE=str(cache))))
        orig.append(run([sys.executable, "-c", ORIGINAL_LOOP, str(work / "folder"),
                         str(work / "folder_orig")], env))
        cmd[cmd.index("-o") + 1] += "_warm"
        warm.append(run(cmd, dict(env, VF_JAX_COMPILATION_CACHE=str(cache))))
    name = f"a folder: 12 files of 0.5-12 s ({audio:.0f} s), whole process"
    return [(f"{name}, vf_jax cold cache", min(cold), min(orig)),
            (f"{name}, vf_jax warm cache", min(warm), min(orig))]


def run(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="*", default=[10.0, 60.0])
    ap.add_argument("--folder", action="store_true",
                    help="also a folder of 12 short files against the original's loop")
    ap.add_argument("--repeats", type=int, default=1, help="whole-process runs per side")
    record.add_flag(ap)
    args = ap.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="vf_jax_bench_"))
    from vf_jax import original as oracle_lib
    original, vf_path, voc_path = oracle_lib.make_oracle(work / "home")
    from vf_jax.restoration import convert, weights
    variables, report, provenance = convert.convert(vf_path, voc_path)
    weights_dir = work / "weights"
    weights.save(str(weights_dir), variables, weights.describe("released", provenance, report))

    env = dict(os.environ, HOME=str(work / "home"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = folder_rows(work, weights_dir, env, args.repeats) if args.folder else []
    for seconds in args.seconds:
        x = signal(seconds)
        src = work / f"in_{seconds:g}s.wav"
        sf.write(src, x, 44100, subtype="PCM_16")
        ours_cmd = [sys.executable, "-m", "vf_jax", "restore", "--weights", str(weights_dir),
                    "-i", str(src), "-o", str(work / "ours.wav"), "--overwrite", "--quiet"]
        orig_cmd = [sys.executable, "-c",
                    "from voicefixer import VoiceFixer; "
                    f"VoiceFixer().restore({str(src)!r}, {str(work / 'orig.wav')!r}, mode=0)"]
        cold, warm, orig = [], [], []
        for r in range(args.repeats):
            cache = work / f"jax_cache_{seconds:g}_{r}"
            cold.append(run(ours_cmd, dict(env, VF_JAX_COMPILATION_CACHE=str(cache))))
            orig.append(run(orig_cmd, env))
            warm.append(run(ours_cmd, dict(env, VF_JAX_COMPILATION_CACHE=str(cache))))
        rows.append((f"{seconds:g} s whole process, vf_jax cold cache", min(cold), min(orig)))
        rows.append((f"{seconds:g} s whole process, vf_jax warm cache", min(warm), min(orig)))

        # Steady state in process.
        import torch

        from vf_jax.restoration.restorer import Restorer
        restorer = Restorer.from_folder(str(weights_dir))
        restorer.restore(x, 44100)
        t = time.perf_counter()
        restorer.restore(x, 44100)
        ours_steady = time.perf_counter() - t
        with torch.no_grad():
            original.restore_inmem(x, mode=0)
            t = time.perf_counter()
            original.restore_inmem(x, mode=0)
            orig_steady = time.perf_counter() - t
        rows.append((f"{seconds:g} s steady state in process", ours_steady, orig_steady))

    import jax
    import torch
    section = "restore_speed_folder" if args.folder and not args.seconds else "restore_speed"
    with record.results(section, args.record):
        print(f"\nmachine: {os.cpu_count()} cores; jax {jax.__version__} on "
              f"{jax.devices()[0].platform}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads\n")
        print("| case | vf_jax (s) | original (s) | vf_jax / original |")
        print("| --- | ---: | ---: | ---: |")
        for name, ours, ref in rows:
            print(f"| {name} | {ours:.2f} | {ref:.2f} | {ours / ref:.2f} |")


if __name__ == "__main__":
    main()

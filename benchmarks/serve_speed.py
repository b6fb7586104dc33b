"""The restoration page against the command line, and under a loop of requests.

With seeded random weights of the published sizes (the compute does not depend
on the values), in one run:

- a 10 s file restored by ``python -m vf_jax restore`` as a whole process with
  a warm compilation cache (a first run fills it), against the time from upload
  to a playable result on the page (``python -m vf_jax serve``, same cache),
  driven by Gradio's client: upload, queue, restore, the result downloaded.
  The issue's floor: the page takes no more than the command plus 1 s;
- ``--requests N`` (default 100) requests in a loop, good uploads (2.5 s of
  speech) and bad ones (not audio, NaN, empty, too long) in turn: whether the
  server still answers, its resident memory after 10 and after N requests
  (floor: within 10 %), and the uploads left on disk (floor: none).

Usage: ``python benchmarks/serve_speed.py [--requests 100] [--record]``
(needs requirements-serve.txt).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def answering(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def inputs(folder: str) -> dict[str, str]:
    """The 10 s file, a 2.5 s one and the bad uploads, from the shipped clip."""
    from vf_jax.data.clip import load_clip
    clip = load_clip()
    ten = np.tile(clip, int(np.ceil(10 * 44100 / len(clip))))[:10 * 44100]
    files = {"ten": "ten.wav", "good": "good.wav", "corrupt": "corrupt.wav",
             "nan": "nan.wav", "empty": "empty.wav", "long": "long.wav"}
    files = {k: os.path.join(folder, v) for k, v in files.items()}
    sf.write(files["ten"], ten, 44100, subtype="PCM_16")
    sf.write(files["good"], clip[:int(2.5 * 44100)], 44100, subtype="PCM_16")
    with open(files["corrupt"], "wb") as f:
        f.write(b"RIFF\x10\x00\x00\x00WAVE" + b"not audio" * 40)
    bad = clip[:44100].copy()
    bad[10:20] = np.nan
    sf.write(files["nan"], bad, 44100, subtype="FLOAT")
    sf.write(files["empty"], np.zeros((0, 1)), 44100)
    sf.write(files["long"], np.tile(clip, 6)[:35 * 44100], 44100, subtype="PCM_16")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100)
    record.add_flag(ap)
    args = ap.parse_args()
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from vf_jax import testing
    work = tempfile.mkdtemp(prefix="vf_jax_serve_bench_")
    try:
        weights = testing.write_seeded_weights(os.path.join(work, "weights"), "released")
        files = inputs(work)
        server_tmp = os.path.join(work, "server_tmp")
        os.makedirs(server_tmp)
        env = dict(os.environ, VF_JAX_COMPILATION_CACHE=os.path.join(work, "cache"),
                   JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
        command = [sys.executable, "-m", "vf_jax", "restore", "-i", files["ten"],
                   "--weights", weights, "--quiet", "--overwrite", "-o"]
        cli = []
        for run in range(2):               # the first fills the compilation cache
            start = time.perf_counter()
            subprocess.run(command + [os.path.join(work, "cli.wav")], env=env, check=True)
            cli.append(time.perf_counter() - start)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "vf_jax", "serve", "--weights", weights, "--port", str(port),
             "--max-seconds", "30", "--quiet"], env=dict(env, TMPDIR=server_tmp),
            stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        start = time.perf_counter()
        while not answering(url):
            if server.poll() is not None or time.perf_counter() - start > 600:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        started = time.perf_counter() - start
        client = Client(url, verbose=False, download_files=os.path.join(work, "client"))

        def request(path):
            return client.predict([handle_file(path)], None, 0, 1.0, "peak", "float32",
                                  api_name="/restore")
        page = []
        for run in range(2):
            start = time.perf_counter()
            _, download, _, _ = request(files["ten"])
            page.append(time.perf_counter() - start)
        same = np.array_equal(sf.read(download, dtype="int16")[0],
                              sf.read(os.path.join(work, "cli.wav"), dtype="int16")[0])
        kinds = ["good", "corrupt", "good", "nan", "good", "empty", "good", "long"]
        memory, failures, start = {}, 0, time.perf_counter()
        for i in range(args.requests):
            kind = kinds[i % len(kinds)]
            sent = shutil.copy(files[kind], os.path.join(work, f"upload-{i:03d}.wav"))
            try:
                request(sent)
                failures += kind != "good"
            except AppError:
                failures += kind == "good"
            os.remove(sent)
            if i + 1 in (10, args.requests):
                memory[i + 1] = resident_mb(server.pid)
        loop_seconds = time.perf_counter() - start
        still = answering(url)
        left = [f for d, _, names in os.walk(server_tmp) for f in names
                if f.startswith(("upload-", "tmp")) and "_restored" not in f]
        server.send_signal(signal.SIGINT)
        server.wait(60)
        with record.results("serve_speed", args.record):
            print(f"10 s of speech (44.1 kHz), weights of the published sizes; "
                  f"server ready in {started:.1f} s\n")
            print("| case | seconds |\n| --- | ---: |")
            print(f"| `restore` whole process, cold cache | {cli[0]:.2f} |")
            print(f"| `restore` whole process, warm cache | {cli[1]:.2f} |")
            print(f"| page: upload to playable result, first request | {page[0]:.2f} |")
            print(f"| page: upload to playable result, next request | {page[1]:.2f} |")
            print(f"\npage first request / command warm: {page[0] / cli[1]:.2f} "
                  f"(floor: at most command + 1 s = {cli[1] + 1:.2f} s: "
                  f"{'met' if page[0] <= cli[1] + 1 else 'NOT met'}); "
                  f"same samples as the command: {same}\n")
            print(f"{args.requests} requests (good and bad in turn) in {loop_seconds:.1f} s: "
                  f"unexpected outcomes {failures}; answering after: {still}; resident "
                  f"memory {memory[10]:.0f} MB after 10, {memory[args.requests]:.0f} MB after "
                  f"{args.requests} ({memory[args.requests] / memory[10] - 1:+.1%}; floor "
                  f"+10 %); uploads left on disk: {len(left)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

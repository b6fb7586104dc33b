r"""CPU figures of this tree against another commit's, side by side in one run.

    python benchmarks/cpu_regression.py                 # against HEAD~1
    python benchmarks/cpu_regression.py --against main  # any revision

The other revision is checked out into a temporary git worktree; the same
timing code (:func:`timings`, using only interfaces both trees have) runs in
a fresh process for each tree, one after the other: the GSR degradations
(examples/s, batch 24 x 3 s), the VF-UNet training step (degradations, front
end, network, AMSGrad; batch 2 x 3 s), the vocoder's generator-only and GAN
steps at the published size (batch 2 x 0.5 s) and restoring 10 s with the released
analysis network and the published vocoder (seeded random weights). Each is a
median of ``--repeats`` calls after a warm-up. Ratios above 1 mean this tree
is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

import record  # noqa: E402  (benchmarks/record.py)


def median_seconds(fn, repeats: int) -> float:
    import jax
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _module(*paths: str):
    """The first of ``paths`` (vf_jax modules, newest layout first) that this
    tree has: the subpackage layouts and the flat one of earlier revisions,
    so that either tree can be timed."""
    import importlib
    for path in paths[:-1]:
        try:
            return importlib.import_module(f"vf_jax.{path}")
        except ModuleNotFoundError:
            pass
    return importlib.import_module(f"vf_jax.{paths[-1]}")


def _config(name: str):
    """A training config of this tree: loaded by name, or the importable
    ``configs`` package of earlier revisions."""
    import importlib
    try:
        from vf_jax import config_files
    except ImportError:
        return importlib.import_module(f"configs.{name}").get_config()
    return config_files.get_config(name)


def timings(repeats: int) -> dict:
    """Seconds per call of each program on this process's vf_jax."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vf_jax import compilation
    degradations = _module("audio.degradations", "degradations")
    models = _module("models.registry", "models")
    train_step = _module("training.analysis.step", "train_step")
    vts = _module("training.vocoder.step", "vocoder_train_step")
    Restorer = _module("restoration.restorer", "restoration.restore", "restore").Restorer
    TFGANGenerator = _module("models.vocoder", "vocoder").TFGANGenerator

    rng = np.random.default_rng(0)
    out = {}

    def raw(batch, seconds):
        n = int(seconds * 44100)
        t = np.arange(n) / 44100
        speech = (0.3 * np.sin(2 * np.pi * 220 * t)[None] * rng.uniform(0.5, 1, (batch, 1))
                  + 0.01 * rng.standard_normal((batch, n))).astype(np.float32)
        return {"speech": speech, "noise": rng.standard_normal((batch, n)).astype(np.float32),
                "rir": (rng.standard_normal((batch, 44100)) * np.exp(-np.arange(44100) / 2000)
                        ).astype(np.float32),
                "speech_length": np.full((batch,), n, np.int32)}

    batch = raw(24, 3.0)
    degrade = degradations.gsr_degrader()
    keys = jax.random.split(jax.random.PRNGKey(0), 24)
    seconds = median_seconds(lambda: degrade(keys, batch["speech"], batch["noise"],
                                             batch["rir"]), repeats)
    out["degradations (ex/s)"] = 24 / seconds

    config = _config("resunet")
    state = train_step.init_state(config, jax.random.PRNGKey(0))
    options = compilation.compiler_options()
    step = jax.jit(train_step.make_step(config), compiler_options=options)
    small = raw(2, 3.0)
    seconds = median_seconds(lambda: step(state, small)[1]["loss"], repeats)
    out["VF-UNet training step (ex/s)"] = 2 / seconds

    vconfig = _config("tfgan")
    vstate = vts.init_state(vconfig, jax.random.PRNGKey(0))
    vstep = jax.jit(vts.make_step(vconfig, adversarial=False), compiler_options=options)
    crops = {"speech": raw(2, 0.5)["speech"]}
    seconds = median_seconds(lambda: vstep(vstate, crops)[1]["loss"], repeats)
    out["vocoder generator-only step (ex/s)"] = 2 / seconds
    vstep = jax.jit(vts.make_step(vconfig, adversarial=True), compiler_options=options)
    seconds = median_seconds(lambda: vstep(vstate, crops)[1]["loss"], repeats)
    out["vocoder GAN step (ex/s)"] = 2 / seconds

    analysis = models.analysis_module("released").init(jax.random.PRNGKey(1),
                                                       jnp.zeros((1, 64, 128)))
    vocoder = TFGANGenerator().init(jax.random.PRNGKey(2), jnp.zeros((1, 8, 128)))
    restorer = Restorer({"analysis": analysis, "vocoder": vocoder})
    audio = raw(1, 10.0)["speech"][0]
    seconds = median_seconds(lambda: restorer.restore(audio, 44100), repeats)
    out["restore 10 s (audio s/s)"] = 10.0 / seconds
    return out


def run_tree(tree: pathlib.Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu",
               VF_JAX_COMPILATION_CACHE="off")
    code = (f"import json, sys; sys.path.insert(0, {str(tree)!r}); "
            f"sys.path.insert(1, {str(ROOT / 'benchmarks')!r}); import cpu_regression as c; "
            f"print('RESULT', json.dumps(c.timings({repeats})))")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tree),
                            capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{tree}: {result.stderr.strip().splitlines()[-1:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    record.add_flag(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        other = pathlib.Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            before = run_tree(other, args.repeats)
            after = run_tree(ROOT, args.repeats)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT,
                           capture_output=True)
    with record.results("cpu_regression", args.record):
        print(f"| figure | {args.against} | this tree | ratio |")
        print("|---|---:|---:|---:|")
        for name in before:
            print(f"| {name} | {before[name]:.2f} | {after[name]:.2f} | "
                  f"{after[name] / before[name]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

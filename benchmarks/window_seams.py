r"""What cutting a file into windows changes: the coarse ladder (TPUs, GPUs)
restores files longer than its top rung (15.3 s) in overlapping windows that
the fine ladder (CPUs; the original's 30 s segments) restores whole.

    python benchmarks/window_seams.py
    python benchmarks/window_seams.py --weights ~/.cache/vf_jax/weights --record

Speech: the shipped clip (eSpeak NG, ``vf_jax/data/README.md``), repeated to
each length and degraded by the demo's chain. Weights (``--weights``): by
default the trained narrow model of the fine-tuning test
(``tests/fixtures/finetune_start``: the released layout at 1/12 width, trained
on the GSR simulation; its vocoder is a small random one, so only the restored
mel is compared). For each length: the restored log10 mel whole against in
windows, as the mean absolute difference over all frames and over the frames
where windows overlap, beside the restoration's own error against the clean
mel (both in log10 units).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)

DEFAULT_WEIGHTS = ROOT / "tests" / "fixtures" / "finetune_start" / "weights"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--seconds", type=float, nargs="+", default=[18.0, 24.0, 29.0])
    record.add_flag(ap)
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    from vf_jax.audio import mel as mel_lib
    from vf_jax.audio.io import SAMPLE_RATE
    from vf_jax.commands.demo import degrade_preview
    from vf_jax.data.clip import load_clip
    from vf_jax.restoration import weights
    from vf_jax.restoration.buckets import FRONT_END, HOP
    from vf_jax.restoration.restorer import Restorer
    variables, meta = weights.load(os.path.expanduser(args.weights))
    whole = Restorer(variables, meta, ladder="fine", compilation_cache=False)
    cut = Restorer(variables, meta, ladder="coarse", compilation_cache=False)
    clip = load_clip()
    rows = []
    for seconds in args.seconds:
        n = int(seconds * SAMPLE_RATE)
        clean = np.tile(clip, -(-n // len(clip)))[:n]
        degraded = degrade_preview(clean, seed=1)
        windows = cut.windows(n)
        a = whole.restore_full(degraded, SAMPLE_RATE).log_mel[0]
        b = cut.restore_full(degraded, SAMPLE_RATE).log_mel[0]
        reference = np.asarray(mel_lib.to_log(mel_lib.mel_spectrogram(clean, FRONT_END)[0]))
        frames = min(len(a), len(reference))
        overlap = np.zeros(len(a), bool)
        for (s0, z0), (s1, _) in zip(windows, windows[1:]):
            overlap[s1 // HOP:(s0 + z0) // HOP] = True
        difference = np.abs(a - b)
        rows.append((seconds, len(whole.windows(n)), len(windows),
                     float(difference.mean()), float(difference[overlap].mean()),
                     float(np.abs(a[:frames] - reference[:frames]).mean())))
    with record.results("window_seams", args.record):
        shown = (os.path.relpath(args.weights, ROOT) if args.weights.startswith(str(ROOT))
                 else args.weights)
        print(f"\nWeights: {shown} ({meta['analysis']['kind']}, width "
              f"{meta['analysis'].get('width', 1):.3g}).\n")
        print("| seconds | windows whole / cut | mean abs difference, log10 mel | "
              "in the overlaps | the restoration's own error (whole, against clean) |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for seconds, w0, w1, diff, diff_overlap, error in rows:
            print(f"| {seconds:g} | {w0} / {w1} | {diff:.4f} | {diff_overlap:.4f} | "
                  f"{error:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m vf_jax export``: a weights folder from any trained analysis
network and vocoder (:mod:`vf_jax.training.export`)."""

from __future__ import annotations

import sys

HELP = "a weights folder from any trained analysis network and vocoder"


def add_arguments(p) -> None:
    p.add_argument("--analysis", "--analysis-workdir", dest="analysis_workdir", required=True,
                   help="analysis training run folder, or a weights folder")
    p.add_argument("--vocoder", "--vocoder-workdir", dest="vocoder_workdir", required=True,
                   help="vocoder training run folder, or a weights folder")
    p.add_argument("--out", required=True, help="weights folder to write")
    p.add_argument("--checkpoint", default="best",
                   help="which checkpoint of a run: best (on validation; default), latest, "
                        "or a step")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")


def main(args) -> int:
    from vf_jax.training import export
    meta = export.export(args.analysis_workdir, args.vocoder_workdir, args.out,
                         args.checkpoint, args.overwrite)
    print(f"wrote {args.out} ({meta['notes'][0]})", file=sys.stderr)
    return 0

"""``python -m vf_jax convert``: the published PyTorch checkpoints into a
weights folder (:mod:`vf_jax.restoration.convert`; no PyTorch needed)."""

from __future__ import annotations

import sys

HELP = "convert the published PyTorch checkpoints"


def add_arguments(p) -> None:
    p.add_argument("--analysis", required=True, help="vf.ckpt (Zenodo record 5600188)")
    p.add_argument("--vocoder", default=None,
                   help="model.ckpt-1490000_trimed.pt (Zenodo record 5469951)")
    p.add_argument("--out", required=True, help="weights folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")


def main(args) -> int:
    from vf_jax.restoration import convert, weights
    variables, report, provenance = convert.convert(args.analysis, args.vocoder)
    meta = weights.describe("released", provenance, report)
    weights.save(args.out, variables, meta, overwrite=args.overwrite)
    for line in report:
        print(line, file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0

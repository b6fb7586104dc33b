"""``python -m vf_jax evaluate``: the paper's metrics over folders, per subset
(:mod:`vf_jax.evaluation.evaluate`); restores the inputs first when asked,
with one or several weights folders side by side."""

from __future__ import annotations

import os
import sys

from vf_jax.commands.restore import restore_files
from vf_jax.errors import UserError

HELP = "the paper's metrics over folders, per subset"


def add_arguments(p) -> None:
    p.add_argument("--ref", default=None, help="folder of references (clean speech)")
    p.add_argument("--testset", default=None,
                   help="instead of --ref: the TFDS data folder holding the GSR test sets "
                        "(python -m vf_jax.data build testset); restored with --weights "
                        "unless --est is given")
    p.add_argument("--est", default=None, help="folder of estimates (same relative paths)")
    p.add_argument("--input", default=None,
                   help="the degraded files (same relative paths): restored first (into "
                        "OUT/restored) unless --est is given; either way scored too, beside "
                        "the estimates, with the gain")
    p.add_argument("--pairs", default=None,
                   help="instead of --ref: the TFDS data folder of your pairs (python -m "
                        "vf_jax.data build paired): their held-out pairs, restored with --weights")
    p.add_argument("--weights", action="append", default=None, metavar="[NAME=]FOLDER",
                   help="weights folder for --input (default: cache); give it several times "
                        "to compare restorers side by side (OUT/comparison.md)")
    p.add_argument("--mode", type=int, choices=(0, 1, 2), default=0, help="restore mode")
    p.add_argument("--out", default="evaluation", help="report folder (default evaluation)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: up to 4)")
    p.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--offline", action="store_true",
                   help="never download the published weights (also VF_JAX_OFFLINE=1)")


def main(args) -> int:
    from vf_jax.evaluation import evaluate
    if args.workers < 0:
        raise UserError("--workers must be 0 (automatic) or more")
    if args.testset is not None and args.pairs is not None:
        raise UserError("give --testset or --pairs, not both")
    for flag, kind in (("--testset", "testset"), ("--pairs", "paired")):
        folder = getattr(args, flag[2:])
        if folder is None:
            continue
        if args.ref is not None or args.input is not None:
            raise UserError(f"{flag} gives the references and inputs; drop --ref/--input")
        args.ref, dataset_inputs = evaluate.export_pairs(folder, os.path.join(args.out, kind),
                                                         kind)
        args.input = dataset_inputs      # restored, or with --est scored as the inputs
    if args.ref is None:
        raise UserError("give --ref (references), --testset (a built GSR test set) or --pairs "
                        "(built pairs)")
    if args.est is None and args.input is None:
        raise UserError("give either --est (estimates to score) or --input (degraded files "
                        "to restore first, with --weights)")
    restorers = named_weights(args.weights)
    if args.input is not None and not os.path.isdir(args.input):
        raise UserError(f"--input {args.input} is not a folder")
    from vf_jax.audio.io import find_audio_files
    inputs = ({os.path.splitext(r)[0]: os.path.join(args.input, r)
               for r in find_audio_files(args.input)} if args.input is not None else None)
    if args.est is not None:
        if args.weights:
            raise UserError("--weights restores --input; with --est give none")
        evaluate.run(args.ref, args.est, args.out, workers=args.workers,
                     with_dnsmos=not args.no_dnsmos, overwrite=args.overwrite,
                     quiet=args.quiet, inputs=inputs)
        return 0
    from vf_jax.restoration import download, files
    restorers = [(name, download.ensure_weights(folder, args.offline, args.quiet))
                 for name, folder in restorers]
    status, summaries = 0, {}
    for name, weights in restorers:
        # One restorer: OUT/restored and the report in OUT; several (side by
        # side): OUT/<name>/restored and OUT/<name>/, then OUT/comparison.md.
        out = args.out if len(restorers) == 1 else os.path.join(args.out, name)
        est = os.path.join(out, "restored")
        status |= restore_files(files.plan(args.input, est, args.overwrite), weights,
                                mode=args.mode, seed=0, precision="float32", subtype="FLOAT",
                                quiet=args.quiet, output=est)
        summaries[name] = evaluate.run(args.ref, est, out, workers=args.workers,
                                       with_dnsmos=not args.no_dnsmos,
                                       overwrite=args.overwrite, quiet=args.quiet,
                                       inputs=inputs)
    if len(restorers) > 1:
        import json
        report = evaluate.comparison(summaries)
        evaluate.write_whole(os.path.join(args.out, "comparison.md"), report)
        evaluate.write_whole(os.path.join(args.out, "comparison.json"),
                             json.dumps(summaries, indent=2, allow_nan=True) + "\n")
        if not args.quiet:
            print(report, file=sys.stderr)
    return status


def named_weights(given: list | None) -> list[tuple[str, str | None]]:
    """``--weights [NAME=]FOLDER`` given 0+ times -> ``[(name, folder)]``
    (none: the cache's converted weights; a name defaults to the folder's)."""
    if not given:
        return [("restored", None)]
    named = []
    for item in given:
        name, sep, folder = item.partition("=")
        if not sep or os.path.isdir(item):
            name, folder = os.path.basename(os.path.normpath(item)), item
        if not name or name in {n for n, _ in named} or name in ("testset", "paired"):
            raise UserError(f"--weights {item}: give each restorer its own name "
                            "(--weights NAME=FOLDER)")
        named.append((name, folder))
    return named

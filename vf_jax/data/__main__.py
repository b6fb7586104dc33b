"""``python -m vf_jax.data build {speech,noise,rir,testset} --src DIR --data-dir DIR``;
``python -m vf_jax.data build paired --degraded DIR --clean DIR --data-dir DIR``;
``python -m vf_jax.data example-pairs --out DIR`` (pairs made from the shipped clip)."""

import argparse
import os
import sys

from vf_jax.errors import UserError, run_guarded

PROG = "python -m vf_jax.data"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Build the GSR datasets (TFDS).")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build one dataset from a local folder")
    b.add_argument("kind", choices=("speech", "noise", "rir", "testset", "paired"))
    b.add_argument("--src", default=None,
                   help="source folder (speech: VCTK's layout or any tree of wav/flac, or "
                        "tfds:NAME[:SPLIT] for a prepared TFDS dataset such as tfds:vctk; "
                        "testset: the unpacked GSR test sets)")
    b.add_argument("--src-data-dir", default=None,
                   help="TFDS data folder of a tfds: source (default: TFDS's)")
    b.add_argument("--src-rate", type=int, default=None,
                   help="sample rate of a tfds: source that does not record it")
    b.add_argument("--data-dir", required=True, help="TFDS data folder to write")
    b.add_argument("--simulate", type=int, default=0,
                   help="rir: simulate N rooms with pyroomacoustics instead of --src")
    b.add_argument("--seed", type=int, default=0, help="seed of the simulated rooms")
    b.add_argument("--validation-fraction", type=float, default=None,
                   help="speech, paired: share of speakers (or files) held out for "
                        "validation (default: 0.05 speech, 0.1 paired)")
    b.add_argument("--degraded", default=None, help="paired: folder of degraded recordings")
    b.add_argument("--clean", default=None,
                   help="paired: folder of their clean partners (same relative paths, any "
                        "audio extension)")
    b.add_argument("--split-by", choices=("speaker", "file"), default="speaker",
                   help="paired: hold out speakers (the file's folder name) or files; "
                        "files when there is one speaker")
    b.add_argument("--max-offset", type=float, default=0.5,
                   help="paired: largest offset (s) between the two sides that is removed")
    b.add_argument("--min-correlation", type=float, default=None,
                   help="paired: smallest normalised correlation of an aligned pair "
                        "(default 0.2)")
    b.add_argument("--any-rate", action="store_true",
                   help="paired: accept pairs recorded at different rates (both resampled "
                        "to 44.1 kHz) instead of skipping them")
    b.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    b.add_argument("--no-verify-tls", action="store_true",
                   help="do not check TLS certificates of downloads (a network that "
                        "intercepts TLS); warns")
    b.add_argument("--quiet", action="store_true")
    e = sub.add_parser("example-pairs",
                       help="a small paired set from the shipped clip (telephone line)")
    e.add_argument("--out", required=True, help="folder to write degraded/ and clean/ into")
    e.add_argument("--pieces", type=int, default=7, help="pairs to cut the clip into")
    args = p.parse_args(argv)
    if args.command == "example-pairs":
        return run_guarded(f"{PROG} example-pairs", lambda: _example_pairs(args))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    return run_guarded(f"{PROG} build", lambda: _build(args),
                       interrupted="interrupted; run the same command again to finish")


def _example_pairs(args) -> int:
    from vf_jax.data.clip import write_example_pairs
    for side in ("degraded", "clean"):
        if os.path.exists(os.path.join(args.out, side)):
            raise UserError(f"{os.path.join(args.out, side)} exists; choose another --out")
    if not 1 <= args.pieces <= 70:
        raise UserError("--pieces must be within 1-70 (the clip is 7.1 s)")
    degraded, clean = write_example_pairs(args.out, args.pieces)
    print(f"wrote {args.pieces} pairs: {degraded} (telephone line) and {clean}",
          file=sys.stderr)
    return 0


def _build(args) -> int:
    from vf_jax.data import alignment
    from vf_jax.data import prepare as build
    fraction = args.validation_fraction
    if fraction is None:
        fraction = 0.1 if args.kind == "paired" else 0.05
    pairs = None
    if args.kind == "paired":
        pairs = {"degraded": args.degraded, "clean": args.clean, "split_by": args.split_by,
                 "max_offset": args.max_offset, "any_rate": args.any_rate,
                 "min_correlation": (alignment.MIN_CORRELATION if args.min_correlation is None
                                     else args.min_correlation)}
    elif args.degraded or args.clean:
        raise UserError("--degraded and --clean are for paired; give --src")
    log = build.build(args.kind, args.data_dir, args.src, simulate=args.simulate,
                      seed=args.seed, validation_fraction=fraction,
                      overwrite=args.overwrite, quiet=args.quiet,
                      src_data_dir=args.src_data_dir, src_rate=args.src_rate, pairs=pairs,
                      verify_tls=not args.no_verify_tls)
    counts = ", ".join(f"{n} {s}" for s, n in log["examples"].items())
    extra = []
    if log.get("skipped"):
        extra.append(f"{len(log['skipped'])} skipped")
    if log.get("mixed_down"):
        extra.append(f"{len(log['mixed_down'])} mixed down to mono")
    if log.get("unpaired"):
        partner = "a partner" if args.kind == "paired" else "a clean partner"
        extra.append(f"{len(log['unpaired'])} without {partner}")
    if log.get("aligned"):
        extra.append(f"{len(log['aligned'])} offset(s) removed")
    more = f" ({'; '.join(extra)}; see {log['dataset']}_build_log.json)" if extra else ""
    print(f"built {log['dataset']} in {args.data_dir}: {counts}{more}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

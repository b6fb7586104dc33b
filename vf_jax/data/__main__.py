"""``python -m vf_jax.data build {speech,noise,rir,testset} --src DIR --data-dir DIR``."""

import argparse
import os
import sys

from vf_jax.errors import run_guarded

PROG = "python -m vf_jax.data"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Build the GSR datasets (TFDS).")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build one dataset from a local folder")
    b.add_argument("kind", choices=("speech", "noise", "rir", "testset"))
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
    b.add_argument("--validation-fraction", type=float, default=0.05,
                   help="speech: share of speakers held out for validation")
    b.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    b.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    return run_guarded(f"{PROG} build", lambda: _build(args),
                       interrupted="interrupted; run the same command again to finish")


def _build(args) -> int:
    from vf_jax.data import prepare as build
    log = build.build(args.kind, args.data_dir, args.src, simulate=args.simulate,
                      seed=args.seed, validation_fraction=args.validation_fraction,
                      overwrite=args.overwrite, quiet=args.quiet,
                      src_data_dir=args.src_data_dir, src_rate=args.src_rate)
    counts = ", ".join(f"{n} {s}" for s, n in log["examples"].items())
    extra = []
    if log.get("skipped"):
        extra.append(f"{len(log['skipped'])} skipped")
    if log.get("mixed_down"):
        extra.append(f"{len(log['mixed_down'])} mixed down to mono")
    if log.get("unpaired"):
        extra.append(f"{len(log['unpaired'])} without a clean partner")
    more = f" ({'; '.join(extra)}; see {log['dataset']}_build_log.json)" if extra else ""
    print(f"built {log['dataset']} in {args.data_dir}: {counts}{more}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

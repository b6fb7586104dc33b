"""``python -m vf_jax weights {download,clear-cache}``: VoiceFixer's published
weights fetched, verified and converted in one command
(:mod:`vf_jax.restoration.download`), and the download cache removed."""

from __future__ import annotations

import sys

HELP = "download and convert VoiceFixer's published weights (or clear the download cache)"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("download", help="fetch the published checkpoints (Zenodo records "
                       "5600188 and 5469951), verify them and convert them")
    d.add_argument("--to", default=None,
                   help="weights folder to write (default: $VF_JAX_WEIGHTS or "
                   "~/.cache/vf_jax/weights)")
    d.add_argument("--mirror", default=None,
                   help="a server with Zenodo's paths (default: $VF_JAX_MIRROR, else zenodo.org)")
    d.add_argument("--from-files", nargs=2, metavar=("VF_CKPT", "VOCODER_PT"), default=None,
                   help="convert files you already have instead of downloading")
    d.add_argument("--overwrite", action="store_true",
                   help="replace an existing weights folder")
    d.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the server before a try fails (default 30)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("clear-cache", help="delete the download cache "
                   "($VF_JAX_DOWNLOADS or ~/.cache/vf_jax/downloads)")


def main(args) -> int:
    from vf_jax.errors import UserError
    from vf_jax.restoration import download
    if args.action == "clear-cache":
        folder = download.download_cache_dir()
        freed = download.clear_cache(folder)
        print(f"removed {folder} ({freed / 1e6:.0f} MB)" if freed
              else f"nothing to remove in {folder}", file=sys.stderr)
        return 0
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    folder, written = download.download_weights(
        args.to, mirror=args.mirror, overwrite=args.overwrite, quiet=args.quiet,
        timeout=args.timeout, from_files=tuple(args.from_files) if args.from_files else None)
    print(f"wrote {folder}" if written else
          f"kept {folder}: it already holds the published weights (--overwrite replaces it)",
          file=sys.stderr)
    return 0

"""``python -m vf_jax serve``: the restoration page (:mod:`vf_jax.serving.page`)
on this machine, until Ctrl-C."""

from __future__ import annotations

import ipaddress
import sys

from vf_jax.errors import UserError

HELP = "a local web page: upload or record, restore, listen, compare, download"


def add_arguments(p) -> None:
    from vf_jax.restoration import weights
    p.add_argument("--weights", default=None,
                   help="weights folder (default: $VF_JAX_WEIGHTS or "
                        f"{weights.default_weights_dir()}, downloaded on first use)")
    p.add_argument("--offline", action="store_true",
                   help="never download the weights (also VF_JAX_OFFLINE=1)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 opens the page to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true",
                   help="also make Gradio's public share link (off unless asked)")
    p.add_argument("--max-upload-mb", type=float, default=200.0,
                   help="largest upload accepted, in MB (default 200)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="longest audio accepted, in seconds (default 600)")
    p.add_argument("--keep-minutes", type=float, default=60.0,
                   help="how long results stay downloadable (default 60)")
    p.add_argument("--quiet", action="store_true", help="fewer messages")


def main(args) -> int:
    from vf_jax.restoration import download
    from vf_jax.serving import page, uploads
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be 1-65535, got {args.port}")
    for name in ("max_upload_mb", "max_seconds", "keep_minutes"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if not loopback(args.host):
        print(f"serving on {args.host}: other machines can reach this page",
              file=sys.stderr)
    if args.share:
        print("--share: Gradio makes a public link to this page", file=sys.stderr)
    weights = download.ensure_weights(args.weights, args.offline, args.quiet)
    page.launch(weights, host=args.host, port=args.port, share=args.share,
                limits=uploads.Limits(args.max_upload_mb, args.max_seconds),
                keep_minutes=args.keep_minutes, quiet=args.quiet)
    return 0


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

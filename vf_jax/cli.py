"""Command line: ``python -m vf_jax {restore,serve,weights,convert,export,degrade,demo,evaluate} ...``.

Each command is a module of :mod:`vf_jax.commands` with its own ``HELP``,
``add_arguments(parser)`` and ``main(args) -> exit status``; this module
assembles them and dispatches. Every failure the user can cause ends with one
line on stderr and a non-zero exit (1: the job failed, 2: bad arguments); no
tracebacks unless ``VF_JAX_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os

from vf_jax import compilation
from vf_jax.errors import run_guarded

PROG = "python -m vf_jax"
COMMANDS = ("restore", "serve", "weights", "convert", "export", "degrade", "demo", "evaluate")


def quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    import logging
    logging.getLogger("jax").setLevel(logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="VoiceFixer speech restoration in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = importlib.import_module(f"vf_jax.commands.{name}")
        p = sub.add_parser(name, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.main)
    return parser


def main(argv=None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(argv)

    def job() -> int:
        compilation.tpu_compile_setting()      # a bad setting stops before any output
        return args.func(args)
    return run_guarded(f"{PROG} {args.command}", job)

"""A benchmark's figures into ``benchmarks/README.md``.

Each benchmark prints its results inside :func:`results`; run with
``--record`` (:func:`add_flag`), what it printed there also replaces the
script's section of ``benchmarks/README.md`` (between ``<!-- BEGIN name -->``
and ``<!-- END name -->``; appended when missing), stamped with the date, the
revision, the machine and the command line, so the figures there are always
a script's output, never typed in.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import pathlib
import platform
import subprocess
import sys

README = pathlib.Path(__file__).resolve().with_name("README.md")
ROOT = README.parents[1]


def add_flag(parser) -> None:
    parser.add_argument("--record", action="store_true",
                        help="also write the results into benchmarks/README.md")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _revision() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # The code that was measured (this file's README is what recording changes).
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "vf_jax", "configs",
                  "benchmarks/*.py")
    return head + (" with uncommitted changes" if changed else "")


def stamp(script: str, argv: list[str]) -> str:
    """Who measured: date, revision, machine, JAX's backend, command."""
    import jax
    device = jax.devices()[0]
    # The running script (a section may be named otherwise: time_to_result).
    program = pathlib.Path(sys.argv[0]).name
    program = program if program.endswith(".py") else f"{script}.py"
    command = " ".join(["python", f"benchmarks/{program}", *argv])
    return (f"_Recorded {datetime.date.today().isoformat()} at revision {_revision()} on "
            f"{_cpu()} ({os.cpu_count()} cores), jax {jax.__version__} "
            f"({device.platform}: {device.device_kind}): `{command}`_")


def write(script: str, text: str, argv: list[str], readme: pathlib.Path = README) -> None:
    """Replace (or append) ``script``'s section of ``readme`` with ``text``."""
    begin, end = f"<!-- BEGIN {script} -->", f"<!-- END {script} -->"
    block = f"{begin}\n{stamp(script, argv)}\n\n{text.strip()}\n{end}"
    old = readme.read_text() if readme.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + f"\n\n### `benchmarks/{script}.py`\n\n{block}\n"
    temporary = readme.with_suffix(".md.tmp")
    temporary.write_text(new)
    os.replace(temporary, readme)
    print(f"recorded in {readme.relative_to(ROOT)}", file=sys.stderr)


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def results(script: str, enabled: bool, argv: list[str] | None = None):
    """Print the results inside; with ``enabled`` they are also recorded."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
        yield
    if enabled and captured.getvalue().strip():
        write(script, captured.getvalue(), sys.argv[1:] if argv is None else argv)

"""The one exception type the command line turns into a one-line message, and
the guard every command runs under."""

from __future__ import annotations

import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem with the user's input, files or environment (not a bug)."""


def first_line(error: BaseException, limit: int = 200, last: bool = False) -> str:
    """One line of ``error``'s message for a one-line report (its first, or
    with ``last`` its last line; the type's name when the message is empty)."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return (lines[-1] if last else lines[0]).strip()[:limit]


def run_guarded(prefix: str, job: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Run ``job`` and turn every failure into one line on stderr (prefixed
    with ``prefix``) and an exit status: 1 for errors, 130 for Ctrl-C. A bug
    shows its traceback only with ``VF_JAX_DEBUG=1``."""
    try:
        return job()
    except UserError as e:
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prefix}: {interrupted}", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prefix}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line unless asked for more
        if os.environ.get("VF_JAX_DEBUG"):
            raise
        msg = (str(e).strip().splitlines() or [""])[0]
        print(f"{prefix}: internal error: {type(e).__name__}: {msg} "
              "(set VF_JAX_DEBUG=1 for details)", file=sys.stderr)
        return 1

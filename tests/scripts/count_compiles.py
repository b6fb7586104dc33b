"""Run a module (``-m name``) or a script as Python would, and count what
XLA compiled: at exit, ``{"requests": ..., "hits": ..., "compiled": ...}``
is written as JSON to OUT (``jax.monitoring``'s persistent-cache events:
requests that went through the cache, those it answered, and the
difference, the programs compiled).

    python tests/scripts/count_compiles.py OUT -m train.analysis --config ...
    python tests/scripts/count_compiles.py OUT script.py
"""

import atexit
import json
import os
import runpy
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from jax import monitoring  # noqa: E402

EVENTS = {"/jax/compilation_cache/compile_requests_use_cache": "requests",
          "/jax/compilation_cache/cache_hits": "hits"}
counts = {"requests": 0, "hits": 0}


def count(event, **kwargs):
    if event in EVENTS:
        counts[EVENTS[event]] += 1


def write(path):
    with open(path, "w") as f:
        json.dump({**counts, "compiled": counts["requests"] - counts["hits"]}, f)


def main():
    out, target, *rest = sys.argv[1:]
    monitoring.register_event_listener(count)
    atexit.register(write, out)
    if target == "-m":
        module, *rest = rest
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *rest]
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()

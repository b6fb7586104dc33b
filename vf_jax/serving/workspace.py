"""The page's private temporary folder: every upload, result and file the web
framework keeps lives under it, and nothing the server reads or writes lies
outside it. Uploads are deleted when their request ends, results once they are
older than the time they are kept, and the whole folder when the server stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


class Workspace:
    """``root/gradio`` (the web framework's folder: uploads, and the copies of
    results it serves) and ``root/results`` (one folder per request)."""

    def __init__(self, keep_seconds: float, parent: str | None = None):
        self.root = tempfile.mkdtemp(prefix="vf_jax-serve-", dir=parent)
        self.framework = os.path.join(self.root, "gradio")
        self.results = os.path.join(self.root, "results")
        os.makedirs(self.framework)
        os.makedirs(self.results)
        self.keep_seconds = keep_seconds
        self.closed = threading.Event()

    def sweep_every(self, seconds: float = 60.0) -> threading.Thread:
        """Sweep (:meth:`sweep`) every ``seconds`` in the background until
        :meth:`close`, so that results go on time without new requests."""
        def loop():
            while not self.closed.wait(seconds):
                self.sweep()
        thread = threading.Thread(target=loop, name="vf_jax-sweep", daemon=True)
        thread.start()
        return thread

    def result_folder(self) -> str:
        """A new, empty folder for one request's results (older ones are swept first)."""
        self.sweep()
        return tempfile.mkdtemp(prefix="request-", dir=self.results)

    def sweep(self, now: float | None = None) -> int:
        """Remove result folders older than ``keep_seconds``; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        try:
            names = os.listdir(self.results)
        except OSError:             # closed
            return 0
        for name in names:
            path = os.path.join(self.results, name)
            try:
                old = now - os.path.getmtime(path) > self.keep_seconds
            except OSError:
                continue
            if old:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def remove_upload(self, path: str | None) -> None:
        """Delete an uploaded file and the folder the framework made for it;
        never anything outside :attr:`framework`."""
        if not path or not inside(path, self.framework) or os.path.realpath(path) == \
                os.path.realpath(self.framework):
            return
        try:
            os.remove(path)
        except OSError:
            return
        folder = os.path.dirname(path)
        if folder != self.framework and inside(folder, self.framework):
            try:
                os.rmdir(folder)          # only when nothing else is in it
            except OSError:
                pass

    def files(self) -> list[str]:
        """Every file under :attr:`root`, relative to it."""
        return sorted(os.path.relpath(os.path.join(d, f), self.root)
                      for d, _, names in os.walk(self.root) for f in names)

    def close(self) -> None:
        self.closed.set()
        shutil.rmtree(self.root, ignore_errors=True)

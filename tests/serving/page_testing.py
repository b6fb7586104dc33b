"""What the restoration page's tests need: Gradio (requirements-serve.txt),
Playwright and a Chromium from the system's packages. Where one is missing
they are skipped, saying which, except under ``VF_JAX_CI=1`` (CI installs
them all), where a missing one fails the test."""

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("VF_JAX_CI", "") == "1"


def need(module: str, why: str):
    """``import module``, or skip (fail under VF_JAX_CI=1) saying ``why``."""
    try:
        return __import__(module)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{module} is not installed ({why}); CI installs it")
        pytest.skip(f"{module} is not installed ({why})")


def chromium() -> str:
    """Debian's Chromium (or ``$VF_JAX_CHROMIUM``), or skip/fail."""
    path = os.environ.get("VF_JAX_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not path:
        if IN_CI:
            pytest.fail("no chromium on PATH; CI installs Debian's chromium package")
        pytest.skip("no chromium on PATH (apt-get install chromium, or set VF_JAX_CHROMIUM)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

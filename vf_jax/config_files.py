"""The training configs (``configs/*.py``, ml_collections ``get_config()``
files) by name or path.

In a source checkout they are the folder ``configs/`` beside the package; an
installed vf_jax ships them as ``vf_jax/configs/`` (``pyproject.toml``), so
the demo and the ahead-of-time programs find the same values either way, and
no package named ``configs`` is installed. The training commands take a file
by path (``--config configs/tiny.py``), ml_collections' way; config files
start from the commented base (``configs/base.py``) and from each other with
:func:`get_config`.

>>> config = get_config("tiny")                    # doctest: +SKIP
>>> config = get_config("resunet", "bigru")        # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
from types import ModuleType

PACKAGE = pathlib.Path(__file__).resolve().parent


def configs_dir() -> pathlib.Path:
    """The folder of the shipped configs: installed, else the checkout's."""
    for folder in (PACKAGE / "configs", PACKAGE.parent / "configs"):
        if (folder / "base.py").is_file():
            return folder
    raise FileNotFoundError("vf_jax's training configs (configs/base.py) are missing")


def path_of(name: str) -> pathlib.Path:
    """A config's file: ``name`` is a path (``configs/tiny.py``) or a shipped
    config's name (``tiny``)."""
    if name.endswith(".py") or "/" in name or "\\" in name:
        return pathlib.Path(name).expanduser().resolve()
    return configs_dir() / f"{name}.py"


@functools.cache
def load_file(path: pathlib.Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"vf_jax_config_{path.stem}", path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"no config file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name: str) -> ModuleType:
    """The config module ``name`` (see :func:`path_of`)."""
    return load_file(path_of(name))


def get_config(name: str, *args, **kwargs):
    """``get_config(*args, **kwargs)`` of config ``name``: a new ``ConfigDict``."""
    return load(name).get_config(*args, **kwargs)

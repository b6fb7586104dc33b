"""How vf_jax compiles: JAX's persistent compilation cache and XLA options.

- :func:`enable_compilation_cache` keeps compiled networks on disk, so a later
  process skips compiling (``$VF_JAX_COMPILATION_CACHE``, ``off`` disables):
  the commands, the training scripts and :class:`vf_jax.Restorer` turn it on;
  the notebooks keep it on Google Drive (:func:`notebook_cache_dir`).
- :func:`jit` is ``jax.jit`` with :func:`compiler_options`, the options of
  :func:`options_for` the default backend; ``VF_JAX_XLA_DEFAULTS=1`` (or
  :func:`xla_defaults`, for the benchmarks' side-by-side runs) keeps XLA's
  defaults everywhere.
  - On CPU, XLA hands convolutions to YNNPACK by default; for the ResUNet's
    2-D convolutions with 32-64 channels its kernels are slower than XLA's
    own, and so is the whole analysis network (``benchmarks/conv_kernels.py``
    measures both; the figures are in ``benchmarks/README.md``). Those fusions
    are turned off for our functions only.
  - On TPU, a program built with ``fast_compile`` (the default) asks the
    compiler for less effort on its speed (``exec_time_optimization_effort``,
    :data:`TPU_OPTIONS`): at -0.5 or below the back end stops searching for
    the best form of every convolution, which is where our programs' compile
    time went. Measured for a v5e chip, the VF-UNet training step compiled in
    132 s instead of 542 s and is estimated faster (185 ms against 200); a
    folder's rows programs in about 30 s instead of 110-130 s, estimated 38 %
    slower (3-5 % slower per audio second than before the coarse ladder). The
    one program whose estimate it made more than 10 % worse, the vocoder's GAN
    step, is built without it (``benchmarks/README.md``, "Measured choices",
    has every program both ways). ``$VF_JAX_TPU_COMPILE``: ``fast`` or ``full`` for every program
    (``full`` pays for a folder larger than some 30 hours of audio, whose
    compute outweighs the compile); ``auto`` (the default) per program.
  GPUs keep XLA's defaults until one measures otherwise.
- :func:`jit_init` compiles parameter initialisation, which is nothing but
  one random draw per parameter: XLA:CPU spends seconds optimising each
  draw's fusion, so these programs are compiled at optimisation level 1,
  which compiles them several times faster and runs them about as fast
  (measured on the tiny vocoder's generator; ``benchmarks/README.md``, "Measured choices").
  The draws are the same distribution; their rounding differs from level 2's,
  so a seed's parameters are those of this setting.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os

import jax
import numpy as np
from jax.experimental.compilation_cache import compilation_cache

from vf_jax.errors import UserError

CACHE_ENV = "VF_JAX_COMPILATION_CACHE"
COLAB_DRIVE = "/content/drive/MyDrive"
XLA_DEFAULTS_ENV = "VF_JAX_XLA_DEFAULTS"
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
# -0.45 and above compiled as the default (0) does; -0.5 to -1 alike.
TPU_OPTIONS = {"exec_time_optimization_effort": -0.5}
TPU_COMPILE_ENV = "VF_JAX_TPU_COMPILE"
TPU_COMPILE = {"auto": None, "fast": True, "full": False}
_DEFAULTS: contextvars.ContextVar[bool] = contextvars.ContextVar("vf_jax_xla_defaults",
                                                                default=False)
INIT_OPTIONS = {"xla_backend_optimization_level": 1}


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "vf_jax", "jax_cache")


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache; returns its folder (None: off).

    ``path`` (``"off"`` disables); else ``$VF_JAX_COMPILATION_CACHE`` (``off``
    disables); else a folder already configured in JAX
    (``jax_compilation_cache_dir``, e.g. by ``$JAX_COMPILATION_CACHE_DIR``),
    which is kept; else ``~/.cache/vf_jax/jax_cache``. Every executable is
    kept, however quick to compile: loading one is faster than compiling the
    smallest of ours. A folder that cannot be created leaves the cache off.
    """
    configured = jax.config.jax_compilation_cache_dir
    if path is None and not os.environ.get(CACHE_ENV) and configured:
        path = configured
    path = os.path.expanduser(path or default_cache_dir())
    if path.lower() == "off":
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    if path != configured:
        jax.config.update("jax_compilation_cache_dir", path)
        # A folder chosen after JAX opened another takes effect on the next compile.
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def notebook_cache_dir(drive: str = COLAB_DRIVE) -> str | None:
    """Where a notebook keeps compiled programs: ``$VF_JAX_COMPILATION_CACHE``
    when set, else ``vf_jax/jax_cache`` on Google Drive when it is mounted at
    ``drive`` (so a new Colab runtime loads what an earlier one compiled),
    else None (:func:`enable_compilation_cache`'s default folder)."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    if os.path.isdir(drive):
        return os.path.join(drive, "vf_jax", "jax_cache")
    return None


def options_for(platform: str, fast_compile: bool = True) -> dict | None:
    """The XLA options vf_jax compiles a program with on ``platform`` (module
    docstring; None: XLA's defaults), unprobed: for compiling ahead of time
    for a platform this process does not run (:mod:`vf_jax.aot.compiler`).
    ``fast_compile``: the program's own choice for a TPU, which
    ``$VF_JAX_TPU_COMPILE`` overrides."""
    forced = tpu_compile_setting()     # refused on every platform, not only where it acts
    if os.environ.get(XLA_DEFAULTS_ENV) or _DEFAULTS.get():
        return None
    if platform == "cpu":
        return dict(CPU_OPTIONS)
    if platform == "tpu":
        return dict(TPU_OPTIONS) if (fast_compile if forced is None else forced) else None
    return None


def tpu_compile_setting() -> bool | None:
    """``$VF_JAX_TPU_COMPILE``: True (``fast``), False (``full``) or None
    (``auto``, unset); :class:`UserError` for anything else. The commands
    check it before they start, so a typo stops them before any output."""
    choice = os.environ.get(TPU_COMPILE_ENV, "auto").strip().lower()
    if choice not in TPU_COMPILE:
        raise UserError(f"{TPU_COMPILE_ENV} must be one of {', '.join(TPU_COMPILE)}, "
                        f"not {choice!r}")
    return TPU_COMPILE[choice]


@contextlib.contextmanager
def xla_defaults():
    """Inside, :func:`options_for` and :func:`compiler_options` give XLA's
    defaults (the benchmarks compare both settings in one process)."""
    token = _DEFAULTS.set(True)
    try:
        yield
    finally:
        _DEFAULTS.reset(token)


def compiler_options(fast_compile: bool = True) -> dict | None:
    """XLA options for our jitted functions on the default backend (None: XLA's
    defaults): :func:`options_for`, probed once with a tiny function, so an XLA
    that does not know an option falls back to its defaults instead of failing."""
    options = options_for(jax.default_backend(), fast_compile)
    return options if options and _accepted(tuple(options.items())) else None


def init_compiler_options() -> dict | None:
    """:func:`compiler_options` plus :data:`INIT_OPTIONS` on CPU (probed the
    same way; without them where XLA refuses them)."""
    options = compiler_options()
    if options is None or jax.default_backend() != "cpu":
        return options
    merged = {**options, **INIT_OPTIONS}
    return merged if _accepted(tuple(merged.items())) else options


@functools.cache
def _accepted(options: tuple) -> bool:
    """Whether XLA compiles a tiny function with ``dict(options)``."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(np.float32(0)).compile()
    except Exception:
        return False
    return True


def jit_init(fun):
    """``jax.jit`` for initialisers, with :func:`init_compiler_options`
    (module docstring). Called inside a trace (``jax.eval_shape``, another
    jit), where XLA options cannot be given, it is a plain nested ``jax.jit``."""
    @functools.wraps(fun)
    def call(*args, **kwargs):
        traced = any(isinstance(x, jax.core.Tracer)
                     for x in jax.tree_util.tree_leaves((args, kwargs)))
        options = None if traced else init_compiler_options()
        return jax.jit(fun, compiler_options=options)(*args, **kwargs)
    return call


class jit:
    """``jax.jit(fun, compiler_options=compiler_options(), **kwargs)``, created on
    first use (the backend, and with it the options, is known only then).
    Attributes (``trace``, ``lower``, ...) are those of the jitted function."""

    def __init__(self, fun, **kwargs):
        self._fun = fun
        self._kwargs = kwargs
        functools.update_wrapper(self, fun)

    @functools.cached_property
    def jitted(self):
        return jax.jit(self._fun, compiler_options=compiler_options(), **self._kwargs)

    def __call__(self, *args, **kwargs):
        return self.jitted(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.jitted, name)

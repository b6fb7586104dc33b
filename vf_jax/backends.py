"""Forms of a computation chosen per backend: what each compiler handles well.

Functions ask :func:`family` while they are traced and build the form that
suits the platform: ``"tpu"``, or ``"default"`` (CPU and GPU). It is the
family of JAX's default backend, unless :func:`force` says otherwise, which
is how a program is compiled ahead of time for a TPU topology on a CPU host
(:mod:`vf_jax.aot.compiler` forces the family of the devices it compiles for).

The choices, each measured (``benchmarks/accelerators.py``,
``benchmarks/cpu_regression.py``):

- FFT lengths (:func:`fft_length`). A TPU lowers an FFT whose length is not a
  power of two as a dense DFT, quadratic in memory: an rfft/irfft pair of
  132,300 samples at batch 8 needs 65 GB of temporaries, 131,072 samples
  129 MB. CPU and GPU FFTs are fast at every ``2^a 3^b 5^c 7^d`` length, and
  the next power of two can be 1.7x longer.
- 1-D convolutions (:func:`vf_jax.models.convolution.conv1d`): matrix products on a TPU.
- The ResUNet's first level (32 channels): folded 2x2 into 128 channels on a
  TPU (:mod:`vf_jax.models.folded`), where 32 channels fill little of the matrix unit.
- Repeated layers (:func:`loops`): the vocoder's residual stacks run as one
  loop body over their stacked weights on a TPU, where the compiler spends
  seconds on every convolution it sees (unrolled, the published vocoder has
  some 80); CPU and GPU run them unrolled. The ResUNet's 2-D convolutions
  follow the same switch (matrix products at inference on a TPU,
  :func:`vf_jax.models.convolution.conv2d`); training steps turn it off.
- The vocoder's GAN step recomputes its discriminators' hidden layers in the
  backward pass on a TPU (``config.remat="auto"``,
  :func:`vf_jax.training.vocoder.step.remat_parts`): at the paper's batch it
  does not fit a v5e chip's 16 GB otherwise.

Every form computes the same function; the tests run each one on CPU
(:func:`force`) and compare. (``jax.lax.platform_dependent`` would stage out
both forms and keep one at lowering; on XLA:CPU that cost the degradations
6 % of their speed, so the choice is made while tracing.)
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import scipy.fft

FAMILIES = ("tpu", "default")
_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("vf_jax_platform",
                                                                     default=None)
_LOOPS: contextvars.ContextVar[bool | None] = contextvars.ContextVar("vf_jax_loops",
                                                                    default=None)


def family_of(platform: str) -> str:
    """``"tpu"`` for a TPU platform name, else ``"default"``."""
    return "tpu" if platform == "tpu" else "default"


def family() -> str:
    """The platform family the function being traced builds its forms for."""
    forced = _FORCED.get()
    return forced if forced is not None else family_of(jax.default_backend())


@contextlib.contextmanager
def force(name: str):
    """Trace the ``name`` family's form of every choice made inside, whatever
    the platform (AOT compiles for another platform; the tests compare the
    forms on CPU). It acts when a function is traced: wrap fresh functions
    (``jax.jit(lambda ...)``), since ``jax.jit`` keeps one trace per function
    and would reuse an earlier one."""
    if name not in FAMILIES:
        raise ValueError(f"unknown platform family {name!r}; one of {FAMILIES}")
    token = _FORCED.set(name)
    try:
        yield
    finally:
        _FORCED.reset(token)


def fft_length(n: int, name: str | None = None, real: bool = True) -> int:
    """The FFT length ``>= n`` the family (default: :func:`family`) computes
    fast: a power of two on a TPU, else the next ``2^a 3^b 5^c 7^d``
    (``scipy.fft.next_fast_len``)."""
    if (name or family()) == "tpu":
        return 1 << max(0, int(n - 1).bit_length())
    return scipy.fft.next_fast_len(int(n), real=real)


def loops() -> bool:
    """Whether repeated layers are traced as a loop over their stacked
    weights (``lax.scan``: compiled once) rather than unrolled: on a TPU,
    unless :func:`force_loops` says otherwise."""
    forced = _LOOPS.get()
    return forced if forced is not None else family() == "tpu"


@contextlib.contextmanager
def force_loops(on: bool):
    """Trace repeated layers looped (``True``) or unrolled (``False``) inside,
    whatever the family: the benchmarks compare the two forms of one program,
    the tests their results. Acts at tracing time, as :func:`force`."""
    token = _LOOPS.set(bool(on))
    try:
        yield
    finally:
        _LOOPS.reset(token)

"""vf_jax: VoiceFixer's general speech restoration (Liu et al. 2021, arXiv
2109.13731) in JAX and Flax.

The public API, importable from here::

    from vf_jax import Restorer
    restored = Restorer.from_folder().restore(audio, sample_rate=16000)

``Restorer.from_folder()`` fetches VoiceFixer's published weights on first
use; ``download_weights(to=None, mirror=None, ...)`` does only that (as
``python -m vf_jax weights download``).

Subpackages, lowest first (a module imports only from its own layer or those
below; ``tests/test_layout.py`` checks it): ``errors``, ``backends``,
``compilation``, ``aot``; ``audio``; ``models``; ``data``; ``restoration``;
``evaluation``; ``training``; ``commands``, ``cli``, ``programs``.

Names are imported on first use, so ``python -m vf_jax --help`` stays quick.
"""

_API = {
    "Restorer": "vf_jax.restoration.restorer",
    "Restoration": "vf_jax.restoration.windows",
    "UserError": "vf_jax.errors",
    "download_weights": "vf_jax.restoration.download",
    "load_clip": "vf_jax.data.clip",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vf_jax' has no attribute {name!r}")

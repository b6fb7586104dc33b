"""The commands of ``python -m vf_jax``, a module each (its arguments and its
body), assembled by :mod:`vf_jax.cli`."""

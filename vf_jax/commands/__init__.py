"""Commands of ``python -m vf_jax``: the demo and the degradation of files."""

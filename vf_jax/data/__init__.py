"""The GSR training data: TFDS datasets (:mod:`~vf_jax.data.builders`), built
by ``python -m vf_jax.data build`` (:mod:`~vf_jax.data.prepare`), and the grain
loader (:mod:`~vf_jax.data.loader`). Also holds the clip the demo ships."""

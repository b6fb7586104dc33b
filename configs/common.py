"""Settings shared by the analysis training configs: the paper's (facts,
"Training"), defined with the training loop in ``vf_jax/analysis_training.py``;
each config file overrides what it needs."""

from vf_jax.analysis_training import base_config as analysis_config  # noqa: F401

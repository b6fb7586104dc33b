"""Settings shared by the analysis training configs: the paper's
(``docs/voicefixer.md``, "Training"), defined with the training loop in
``vf_jax/training/analysis/train.py``; each config file overrides what it needs."""

from vf_jax.training.analysis.train import base_config as analysis_config  # noqa: F401

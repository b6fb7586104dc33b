"""The training configs: each file starts with the command that runs it and
shows its values over the settings every training shares
(:func:`vf_jax.training.config.base`). They are importable (``from configs
import tiny``) so the demo, the notebooks and the ahead-of-time programs use
the same values the commands do."""

r"""A tiny VF-DNN that trains on a CPU in minutes, on the shipped clip when no
data folder is given (the settings: ``vf_jax.training.analysis.train.tiny_config``).

    python -m train.analysis --config configs/tiny.py --workdir runs/tiny
"""

from vf_jax.training.analysis.train import tiny_config


def get_config():
    return tiny_config()

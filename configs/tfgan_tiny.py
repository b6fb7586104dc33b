r"""A small TFGAN vocoder that trains on a CPU in minutes, on the shipped clip
when no data folder is given (``vf_jax.training.vocoder.train.tiny_config``).

    python -m train.vocoder --config configs/tfgan_tiny.py --workdir runs/tfgan_tiny
"""

from vf_jax.training.vocoder.train import tiny_config


def get_config():
    return tiny_config()

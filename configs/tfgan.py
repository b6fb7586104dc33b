r"""The TFGAN vocoder at the published size (33.9 M parameters), with the
original's leftover training settings (``vf_jax.training.vocoder.train.base_config``).

    python -m train.vocoder --config configs/tfgan.py --workdir runs/tfgan \
        --config.data_dir=data/
"""

from vf_jax.training.vocoder.train import base_config


def get_config():
    return base_config()

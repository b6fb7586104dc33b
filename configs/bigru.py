r"""VF-BiGRU on the GSR data, with the paper's settings (those of configs/resunet.py).

    python -m train.analysis --config configs/bigru.py --workdir runs/bigru \
        --config.data_dir=data/
"""

from vf_jax import config_files


def get_config():
    return config_files.get_config("resunet", model="bigru")

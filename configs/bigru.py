r"""VF-BiGRU on the GSR data, with the paper's settings (those of configs/resunet.py).

    python -m train.analysis --config configs/bigru.py --workdir runs/bigru \
        --config.data_dir=data/
"""

from configs import resunet


def get_config():
    return resunet.get_config(model="bigru")

r"""VF-BiGRU on the GSR data (the paper's settings).

    python -m train.analysis --config configs/bigru.py --workdir runs/bigru \
        --config.data_dir=data/
"""

from configs.common import analysis_config


def get_config():
    return analysis_config("bigru")

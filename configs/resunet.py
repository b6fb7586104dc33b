r"""VF-UNet on the GSR data (the paper's settings).

    python -m train.analysis --config configs/resunet.py --workdir runs/resunet \
        --config.data_dir=data/
"""

from configs.common import analysis_config


def get_config():
    return analysis_config("unet")

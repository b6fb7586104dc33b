r"""VF-DNN on the GSR data (the paper's settings).

    python -m train.analysis --config configs/dnn.py --workdir runs/dnn \
        --config.data_dir=data/
"""

from configs.common import analysis_config


def get_config():
    return analysis_config("dnn")

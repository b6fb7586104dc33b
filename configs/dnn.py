r"""VF-DNN on the GSR data, with the paper's settings (those of configs/resunet.py).

    python -m train.analysis --config configs/dnn.py --workdir runs/dnn \
        --config.data_dir=data/
"""

from configs import resunet


def get_config():
    return resunet.get_config(model="dnn")

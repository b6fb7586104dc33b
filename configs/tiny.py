r"""A tiny VF-DNN that trains on a CPU in minutes, on the shipped clip when no
data folder is given.

    python -m train.analysis --config configs/tiny.py --workdir runs/tiny
"""

from configs.common import analysis_config


def get_config():
    c = analysis_config("dnn")
    c.learning_rate = 1e-3
    c.warmup_steps = 10
    c.batch_size_per_device = 4
    c.crop_seconds = 1.0
    c.rir_seconds = 0.5
    c.worker_count = 0
    c.num_steps = 300
    return c

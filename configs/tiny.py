r"""A tiny VF-DNN that trains on a CPU in minutes, on the shipped clip when no
data folder is given; the demo trains it.

    python -m train.analysis --config configs/tiny.py --workdir runs/tiny
"""

from vf_jax import config_files


def get_config():
    c = config_files.get_config("dnn")
    c.learning_rate = 1e-3
    c.warmup_steps = 10
    c.batch_size_per_device = 4
    c.crop_seconds = 1.0
    c.rir_seconds = 0.5
    c.worker_count = 0                  # data in the training process
    c.num_steps = 300
    c.eval_every = 100
    c.eval_examples = 8
    c.eval_batch_size_per_device = 4
    c.checkpoint_every = 100
    return c

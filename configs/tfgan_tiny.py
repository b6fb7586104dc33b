r"""A small TFGAN vocoder with small discriminators that trains on a CPU in
minutes, on the shipped clip when no data folder is given.

    python -m train.vocoder --config configs/tfgan_tiny.py --workdir runs/tfgan_tiny
"""

from vf_jax import config_files


def get_config():
    c = config_files.get_config("tfgan")
    c.generator.update({"channels": 64, "cond_channels": 32, "resstack_depth": 3})
    c.discriminators.update({"waveform_channels": 4, "max_channels": 64,
                             "spectrogram_channels": 8})
    c.discriminator_start = 200
    c.batch_size_per_device = 4
    c.crop_seconds = 0.25
    c.worker_count = 0                  # data in the training process
    c.num_steps = 400
    c.eval_every = 100
    c.eval_examples = 4
    c.eval_batch_size_per_device = 4
    c.checkpoint_every = 100
    c.log_every = 10
    return c

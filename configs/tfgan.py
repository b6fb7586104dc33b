r"""The TFGAN vocoder at the published size (33.9 M parameters) on clean speech.

    python -m train.vocoder --config configs/tfgan.py --workdir runs/tfgan \
        --config.data_dir=data/

From docs/voicefixer.md, "Vocoder": the training repository's leftover
vocoder config gives learning rate 1e-3 for generator and discriminators, EMA
0.99, batch 24, discriminators from step 40k, and the loss weights adv 4, sc 5,
mag 5, mel 50. The rest is ours: Adam betas (0.5, 0.9) and N(0, 0.02) weights
(MelGAN), feature matching 10 (MelGAN's weight), the STFT resolutions of
Parallel WaveGAN, 0.5 s crops.
"""

import ml_collections

from vf_jax import config_files
from vf_jax.models import discriminators


def get_config():
    c = config_files.get_config("base")
    c.generator = ml_collections.ConfigDict(
        {"channels": 1024, "cond_channels": 512, "resstack_depth": 8})
    # (n_fft, hop, window) of the multi-resolution STFT loss and of the
    # spectrogram discriminators.
    c.stft_resolutions = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    c.discriminators = discriminators.config(
        scales=3, resolutions=c.stft_resolutions, subbands_=4, waveform_channels=16,
        max_channels=1024, spectrogram_channels=32)
    c.loss_weights = ml_collections.ConfigDict(
        {"sc": 5.0, "mag": 5.0, "mel": 50.0, "adv": 4.0, "fm": 10.0})
    c.discriminator_start = 40_000      # generator-only steps before the GAN losses
    c.generator_learning_rate = 1e-3
    c.discriminator_learning_rate = 1e-3
    c.b1, c.b2 = 0.5, 0.9
    c.lr_decay = 1.0
    c.lr_decay_every = 100_000
    c.ema_decay = 0.99
    c.remat = "auto"                    # none | discriminators | all | auto (TPU: discriminators)
    c.init_weights = ""                 # weights folder: fine-tune its vocoder
    # Data: clean-speech crops of the speech dataset.
    c.batch_size_per_device = 24
    c.crop_seconds = 0.5
    c.num_steps = 1_000_000
    # Validation of the EMA generator on fixed clean crops.
    c.eval_every = 2000
    c.eval_examples = 32
    c.eval_batch_size_per_device = 4
    c.checkpoint_every = 2000
    c.log_every = 20
    return c

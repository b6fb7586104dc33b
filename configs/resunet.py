r"""VF-UNet on the GSR data, with the paper's settings (docs/voicefixer.md, "Training").

    python -m train.analysis --config configs/resunet.py --workdir runs/resunet \
        --config.data_dir=data/

VF-BiGRU and VF-DNN (configs/bigru.py, configs/dnn.py) train with the same
settings; only the network differs.
"""

from vf_jax import config_files
from vf_jax.audio import degradations


def get_config(model: str = "unet"):
    c = config_files.get_config("base")
    c.model = model                     # released | unet | bigru | dnn
    c.model_width = 1.0                 # hidden sizes x this (1: the paper's and published)
    c.loss = "log_l1"                   # log_l1 (the code) | linear_l1 (the paper's text)
    # Adam with AMSGrad, betas (0.5, 0.999); 5e-4 after a 100-step warm-up, x0.9 every 40k.
    c.learning_rate = 5e-4
    c.warmup_steps = 100
    c.lr_decay = 0.9
    c.lr_decay_every = 40_000
    c.b1, c.b2 = 0.5, 0.999
    # Data: 3 s crops, 24 per device, every degradation with the original's
    # probabilities and ranges (vf_jax.audio.degradations.gsr_config).
    c.batch_size_per_device = 24
    c.crop_seconds = 3.0
    c.rir_seconds = 1.0
    c.degradation = degradations.gsr_config()
    c.num_steps = 400_000
    # Validation on fixed crops with fixed degradations (mel L1, LSD, SiSPNR);
    # the best checkpoint is judged on val/mel_l1.
    c.eval_every = 1000
    c.eval_examples = 64
    c.eval_batch_size_per_device = 8
    c.checkpoint_every = 1000
    c.log_every = 10
    c.vocoder_weights = ""              # converted weights folder: listen through its vocoder
    # Data and starting point (configs/finetune.py sets them for fine-tuning).
    c.dataset = "speech"                # speech: GSR simulation | paired: data_dir's gsr_paired
    c.paired_fraction = 1.0             # paired: share of examples with the real degraded side
    c.init_weights = ""                 # weights folder, exported or training run to start from
    c.freeze = ""                       # parameter name patterns kept fixed, e.g. denoiser
    c.batch_norm = "update"             # update | frozen: BatchNorm statistics in training
    return c

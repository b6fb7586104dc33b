"""Settings shared by the analysis training configs (the paper's, from the
facts file's "Training"); each config file overrides what it needs."""

import ml_collections

from vf_jax import degradations


def analysis_config(model: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = model                     # released | unet | bigru | dnn
    c.loss = "log_l1"                   # log_l1 (the code) | linear_l1 (the paper's text)
    # Adam with AMSGrad, betas (0.5, 0.999); 5e-4, warm-up 100 steps, x0.9 every 40k.
    c.learning_rate = 5e-4
    c.warmup_steps = 100
    c.lr_decay = 0.9
    c.lr_decay_every = 40_000
    c.b1, c.b2 = 0.5, 0.999
    c.eps = 1e-8                        # Adam's epsilon (PyTorch's default)
    c.grad_clip = 0.0
    c.bf16 = False
    # Data: 3 s crops, batch 24 per device, degradations as the original.
    c.data_dir = ""                     # TFDS folder of `python -m vf_jax.data build`
    c.batch_size_per_device = 24
    c.crop_seconds = 3.0
    c.rir_seconds = 1.0
    c.degradation = degradations.gsr_config()
    c.worker_count = 2
    c.seed = 0
    c.parallel = "jit"                  # jit (mesh, sharded batch) | pmap
    c.num_steps = 400_000
    c.distributed = False               # several hosts: jax.distributed.initialize()
    # Checkpoints and logs.
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.log_every = 10
    c.quiet = False
    return c

"""The base every training config starts from: the settings every training
shares, declared once (the loop, data parallelism, the optimiser's common
keys, input, validation, checkpoints and logs). Not run by itself: each
family's config file (``configs/resunet.py`` for the analysis networks,
``configs/tfgan.py`` for the vocoder) starts from it with
``config_files.get_config("base")``, sets its own values for these keys and
adds its own. The loop reads them as attributes, so a missing key is an error,
not a silent default."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Optimiser (vf_jax.training.optim): Adam's betas and epsilon, clipping,
    # and the learning rate times lr_decay every lr_decay_every steps.
    c.b1, c.b2 = 0.9, 0.999
    c.eps = 1e-8                        # PyTorch's default
    c.grad_clip = 0.0                   # > 0: clip the gradients' global norm to this
    c.lr_decay = 1.0
    c.lr_decay_every = 100_000
    c.bf16 = False                      # compute in bfloat16 (parameters stay float32)
    # Input.
    c.data_dir = ""                     # TFDS folder of `python -m vf_jax.data build`
    c.batch_size_per_device = 24
    c.crop_seconds = 1.0
    c.worker_count = 2                  # grain workers (0: in this process)
    c.seed = 0
    # Devices and hosts.
    c.parallel = "jit"                  # jit (mesh, sharded batch) | pmap
    c.distributed = False               # several hosts: jax.distributed.initialize()
    c.coordinator_address = ""          # host:port of process 0 (auto-detected on TPU pods)
    c.num_processes = 1
    c.process_id = 0
    # Length of the run.
    c.num_steps = 100_000
    c.max_train_seconds = 0.0           # > 0: save and stop after this much training time
    # Validation.
    c.eval_every = 1000                 # steps between validations (0: none)
    c.eval_examples = 32
    c.eval_batch_size_per_device = 4
    c.media_examples = 2                # examples whose audio and spectrograms are logged
    # Checkpoints (the newest keep_checkpoints and the best) and logs.
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.log_every = 10
    c.tensorboard = True
    c.quiet = False                     # no progress bar
    return c

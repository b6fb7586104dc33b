r"""Fine-tune a trained analysis network on your own pairs (degraded and clean
recordings of the same speech), starting from its weights.

    python -m vf_jax.data build paired --degraded D --clean C --data-dir data/
    python -m train.analysis --config configs/finetune.py --workdir runs/finetune \
        --config.data_dir=data/ --config.init_weights=WEIGHTS_DIR

``init_weights``: a weights folder (the converted published model, or one
written by ``python -m vf_jax export``) or an analysis training run; the
network's kind comes from it. Validation runs on the held-out pairs and logs,
beside each metric, the starting model's value (``val/start_...``).
"""

from vf_jax import config_files


def get_config():
    c = config_files.get_config("resunet", model="")    # "": the kind of init_weights
    c.dataset = "paired"
    # Real pairs in 80 % of the examples; the rest the GSR simulation applied
    # to the clean side (noise and RIRs from data_dir when built there), which
    # keeps the model general.
    c.paired_fraction = 0.8
    c.init_weights = ""                 # required
    c.freeze = ""                       # e.g. denoiser (the released model's), unet/encoder*
    c.batch_norm = "frozen"             # few examples: keep the starting statistics
    # A smaller learning rate than training from scratch (5e-4), constant, and
    # few steps: the starting model is already good.
    c.learning_rate = 1e-4
    c.warmup_steps = 50
    c.lr_decay = 1.0
    c.batch_size_per_device = 8
    c.crop_seconds = 3.0
    c.num_steps = 2000
    c.eval_every = 200
    c.eval_examples = 32
    c.checkpoint_every = 200
    return c

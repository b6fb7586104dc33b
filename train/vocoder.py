r"""Train the TFGAN vocoder on clean speech.

    python -m train.vocoder --config configs/tfgan_tiny.py --workdir runs/tfgan_tiny
    python -m train.vocoder --config configs/tfgan.py --workdir runs/tfgan \
        --config.data_dir=data/ --init weights/   # fine-tune the published one

``--init DIR`` (``--config.init_weights=DIR``) starts the generator and its
EMA from the vocoder of a weights folder (``python -m vf_jax convert`` of the
published weights, or an export); its sizes must be the config's.

Re-running with the same ``--workdir`` resumes from the newest checkpoint that
reads back (generator, its EMA, discriminators, both optimisers and the data
iterator's position). SIGTERM saves and exits cleanly. Logs: TensorBoard in
``WORKDIR/tensorboard/``, ``WORKDIR/metrics.jsonl``, a progress bar. Export a
weights folder with ``python -m vf_jax export``. The loop is
``vf_jax/training/vocoder/train.py``.
"""

from __future__ import annotations

import sys

from vf_jax.training.command_line import command_line
from vf_jax.training.vocoder.train import train_and_evaluate


def main(argv=None) -> int:
    return command_line("python -m train.vocoder", train_and_evaluate, argv, aliases={
        "init": ("init_weights", "weights folder whose vocoder the generator starts from")})


if __name__ == "__main__":
    sys.exit(main())

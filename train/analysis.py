r"""Train an analysis network (VF-UNet, VF-BiGRU, VF-DNN, or the released one).

    python -m train.analysis --config configs/tiny.py --workdir runs/tiny
    python -m train.analysis --config configs/resunet.py --workdir runs/resunet \
        --config.data_dir=data/ --config.parallel=pmap

Re-running with the same ``--workdir`` resumes from the newest checkpoint that
reads back (parameters, BatchNorm statistics, optimiser, PRNG and the data
iterator's position), so a stopped-and-resumed run ends where an uninterrupted
one does. SIGTERM (preemption) saves and exits cleanly. Logs: TensorBoard
event files in ``WORKDIR/tensorboard/`` (``tensorboard --logdir WORKDIR``),
``WORKDIR/metrics.jsonl``, and a progress bar with the loss and ETA. The training
is ``vf_jax/training/analysis/train.py``; the loop it runs,
``vf_jax/training/loop.py``.
"""

from __future__ import annotations

import sys

from vf_jax.training.analysis.train import TrainingStopped, train_and_evaluate  # noqa: F401
from vf_jax.training.command_line import command_line


def main(argv=None) -> int:
    return command_line("python -m train.analysis", train_and_evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())

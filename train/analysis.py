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

import os
import sys

from vf_jax.training.analysis.train import TrainingStopped, train_and_evaluate  # noqa: F401


def command_line(program: str, train, argv=None, aliases: dict | None = None) -> int:
    """``--config FILE --workdir DIR [--config.key=value ...]`` -> ``train(config,
    workdir)``; a bad command line is one line and exit 2, a failure one line
    and exit 1. ``aliases``: ``{flag: (config key, help)}``, shorter spellings of
    ``--config.KEY=VALUE`` for string settings."""
    from absl import flags
    from ml_collections import config_flags

    from vf_jax.errors import first_line, run_guarded
    config_flags.DEFINE_config_file("config", None, "training config file", lock_config=True)
    flags.DEFINE_string("workdir", None, "run folder (checkpoints, metrics)")
    flags.mark_flags_as_required(["config", "workdir"])
    for flag, (_, help_text) in (aliases or {}).items():
        flags.DEFINE_string(flag, None, help_text)
    try:
        flags.FLAGS(sys.argv if argv is None else argv)
        path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
        if not os.path.isfile(path):
            raise ValueError(f"no config file {path}")
        config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
        for flag, (key, _) in (aliases or {}).items():
            if flags.FLAGS[flag].value is not None:
                config[key] = flags.FLAGS[flag].value
        _ = config.num_steps   # a config file that fails to load fails here
    except Exception as e:   # unknown keys, bad values, a missing config file
        first = first_line(e, 500, last=True)
        if isinstance(e, AttributeError):
            first = f"unknown setting {first.strip(chr(34))}"
        print(f"{program}: bad command line: {first}", file=sys.stderr)
        return 2

    def job() -> int:
        # Compiled steps kept on disk: a resumed run (after preemption) starts
        # without compiling again.
        from vf_jax.compilation import enable_compilation_cache
        enable_compilation_cache()
        train(config, workdir)
        return 0
    return run_guarded(program, job)


def main(argv=None) -> int:
    return command_line("python -m train.analysis", train_and_evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The training commands' command line (``python -m train.analysis``,
``python -m train.vocoder``): ml_collections' ``--config FILE`` with
``--config.key=value`` overrides, ``--workdir``, and one-line errors."""

from __future__ import annotations

import os
import sys


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
        from vf_jax.compilation import enable_compilation_cache, tpu_compile_setting
        tpu_compile_setting()      # a bad setting stops before the run folder is touched
        enable_compilation_cache()
        train(config, workdir)
        return 0
    return run_guarded(program, job)

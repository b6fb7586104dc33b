"""JAX's persistent compilation cache outlives the process: a second process
restoring the same shapes (the API, ``Restorer``), and a resumed training
run, compile nothing; ``compilation_cache=False`` leaves JAX's settings
alone. Counted by ``tests/scripts/count_compiles.py`` (``jax.monitoring``)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT

COUNT = os.path.join(ROOT, "tests", "scripts", "count_compiles.py")


def counted(tmp_path, name, args, env_cache=None):
    """Run ``count_compiles.py`` with ``args`` in a fresh process; its counts."""
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VF_JAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env["JAX_PLATFORMS"] = "cpu"
    if env_cache:
        env["VF_JAX_COMPILATION_CACHE"] = str(env_cache)
    proc = subprocess.run([sys.executable, COUNT, str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_notebooks_keep_the_cache_on_a_mounted_drive(tmp_path, monkeypatch):
    from vf_jax import compilation
    drive = tmp_path / "MyDrive"
    monkeypatch.delenv("VF_JAX_COMPILATION_CACHE", raising=False)
    assert compilation.notebook_cache_dir(str(drive)) is None        # not mounted
    drive.mkdir()
    assert compilation.notebook_cache_dir(str(drive)) == str(drive / "vf_jax" / "jax_cache")
    monkeypatch.setenv("VF_JAX_COMPILATION_CACHE", "off")              # the variable wins
    assert compilation.notebook_cache_dir(str(drive)) == "off"
    assert compilation.enable_compilation_cache("off") is None


@pytest.mark.slow
def test_a_second_process_restoring_the_same_shapes_compiles_nothing(tmp_path,
                                                                     small_weights_dir):
    cache = tmp_path / "cache"
    script = tmp_path / "restore.py"

    def write(setting):
        script.write_text(textwrap.dedent(f"""
            import numpy as np
            from vf_jax import Restorer
            restorer = Restorer.from_folder({str(small_weights_dir)!r},
                                            compilation_cache={setting!r})
            t = np.arange(16000 * 2) / 16000
            audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            for mode in (0, 1):
                assert np.isfinite(restorer.restore(audio, 16000, mode=mode)).all()
        """))
    write(str(cache))
    first = counted(tmp_path, "first", [str(script)])
    assert first["compiled"] > 0 and first["hits"] == 0, first
    assert any(cache.iterdir())
    second = counted(tmp_path, "second", [str(script)])
    assert second["compiled"] == 0 and second["hits"] == first["requests"], (first, second)
    # The default folder is $VF_JAX_COMPILATION_CACHE's, as for the commands.
    write(True)
    assert counted(tmp_path, "default", [str(script)], env_cache=cache)["compiled"] == 0
    # False: JAX's settings untouched (here none), so the filled cache is not read.
    write(False)
    off = counted(tmp_path, "off", [str(script)], env_cache=cache)
    assert off["hits"] == 0 and off["compiled"] == first["compiled"], (first, off)


@pytest.mark.slow
def test_a_resumed_training_run_compiles_nothing(tmp_path):
    cache, workdir = tmp_path / "cache", tmp_path / "run"

    def train(name, steps):
        return counted(tmp_path, name, [
            "-m", "train.analysis", "--config", "configs/tiny.py", "--workdir", str(workdir),
            "--config.quiet=True", f"--config.num_steps={steps}", "--config.checkpoint_every=2",
            "--config.eval_every=0", "--config.crop_seconds=0.5",
            "--config.batch_size_per_device=2"], env_cache=cache)
    first = train("first", 2)
    assert first["compiled"] > 0, first
    resumed = train("resumed", 4)
    assert resumed["compiled"] == 0 and resumed["hits"] > 0, (first, resumed)

"""The Colab notebook runs top to bottom (on CPU, with test weights)."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import TEST_XLA_FLAGS

pytestmark = pytest.mark.slow        # the whole module takes minutes

ROOT = pathlib.Path(__file__).resolve().parents[2]


def execute(name: str, tmp_path, monkeypatch):
    """Run ``colab/<name>`` in a fresh kernel in ``tmp_path/run``; returns the
    executed notebook, the folder and every code cell's outputs. Each notebook
    keeps its compiled programs in the folder ``$VF_JAX_COMPILATION_CACHE``
    names (on Colab: Drive, ``vf_jax.compilation.notebook_cache_dir``)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cache = tmp_path / "compiled"
    monkeypatch.setenv("VF_JAX_COMPILATION_CACHE", str(cache))
    nb = nbformat.read(ROOT / "colab" / name, as_version=4)
    work = tmp_path / "run"
    work.mkdir()
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(f"compilation cache: {cache}" in o.get("text", "") for o in outputs)
    assert any(cache.iterdir())
    return nb, work, outputs


def test_restore_notebook_executes(oracle, tmp_path, monkeypatch):
    _, vf_path, voc_path = oracle
    monkeypatch.setenv("VF_JAX_ANALYSIS_CKPT", vf_path)
    monkeypatch.setenv("VF_JAX_VOCODER_CKPT", voc_path)
    monkeypatch.setenv("VF_JAX_NOTEBOOK_WEIGHTS", str(tmp_path / "weights"))
    _, work, outputs = execute("restore.ipynb", tmp_path, monkeypatch)
    assert (work / "restored.wav").exists() and (work / "before_after.png").exists()
    assert any("restored:" in o.get("text", "") for o in outputs)
    # Outside Colab the page's cell says how to open it and starts no server.
    assert any("the page, from a terminal: python -m vf_jax serve --weights" in o.get("text", "")
               for o in outputs)


def test_train_notebook_executes_on_two_cpu_devices(tmp_path, monkeypatch):
    """The training notebook's quick settings: toy dataset, data-parallel over
    two simulated devices, TensorBoard logs, Griffin-Lim listening."""
    monkeypatch.setenv("VF_JAX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("VF_JAX_NOTEBOOK_WEIGHTS", str(tmp_path / "no_weights"))
    monkeypatch.setenv("XLA_FLAGS", f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=2")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    _, work, outputs = execute("train_tpu.ipynb", tmp_path, monkeypatch)
    text = "".join(o.get("text", "") for o in outputs)
    assert "2 devices:" in text and "global batch: 4" in text
    assert "restored (dnn, 12 steps, Griffin-Lim)" in text
    assert (work / "runs" / "notebook" / "tensorboard").is_dir()
    assert (work / "train_results.png").exists() and (work / "restored_trained.wav").exists()
    assert sorted(os.listdir(work / "runs" / "notebook" / "checkpoints")) == ["12", "6"]


def test_corpus_notebook_restores_a_folder_and_resumes(small_weights_dir, tmp_path, monkeypatch):
    """The folder notebook on CPU: a toy folder cut from the shipped clip,
    restored, the manifest read, files listened to, and a second run that
    finds nothing left to do."""
    monkeypatch.setenv("VF_JAX_NOTEBOOK_WEIGHTS", small_weights_dir)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    _, work, outputs = execute("restore_corpus.ipynb", tmp_path, monkeypatch)
    text = "".join(o.get("text", "") for o in outputs)
    assert "restored 6, skipped 0 (done before), failed 0 of 6 file(s)" in text
    assert "6 done" in text and "0 failed" in text
    assert "restored 0, skipped 6 (done before)" in text
    assert len(list((work / "restored_corpus").rglob("*.wav"))) == 6
    assert sum(o.get("output_type") == "display_data" for o in outputs) == 6   # 3 x before, after

"""The Colab notebook runs top to bottom (on CPU, with test weights)."""

import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_restore_notebook_executes(oracle, tmp_path, monkeypatch):
    _, vf_path, voc_path = oracle
    monkeypatch.setenv("VF_JAX_ANALYSIS_CKPT", vf_path)
    monkeypatch.setenv("VF_JAX_VOCODER_CKPT", voc_path)
    monkeypatch.setenv("VF_JAX_NOTEBOOK_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(ROOT / "colab" / "restore.ipynb", as_version=4)
    work = tmp_path / "run"
    work.mkdir()
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()
    assert (work / "restored.wav").exists() and (work / "before_after.png").exists()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("restored:" in o.get("text", "") for o in outputs)

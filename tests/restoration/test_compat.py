"""Files written before the package was split into subpackages (commit
ca4eeeb; how: tests/fixtures/before_layout_move/make.py) still load: a vocoder
training run resumes with the very arrays it saved, and a weights folder
restores what that commit restored from it."""

import importlib.util
import pathlib
import shutil

import jax
import numpy as np

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "before_layout_move"


def _maker():
    spec = importlib.util.spec_from_file_location("before_layout_move", FIXTURES / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_vocoder_run_from_before_the_move_resumes_with_its_arrays(tmp_path, capfd):
    from vf_jax import config_files
    from vf_jax.training.vocoder import train as vocoder_training
    run = tmp_path / "vocoder_run"
    shutil.copytree(FIXTURES / "vocoder_run", run)
    config = _maker().vocoder_config(lambda: config_files.get_config("tfgan_tiny"))
    state = vocoder_training.train_and_evaluate(config, str(run))   # at its last step: reads only
    # A fresh start with the same seed would give the same arrays: the run must
    # have resumed, trained nothing and set no checkpoint aside as unreadable.
    assert "resumed from step 1" in capfd.readouterr().err
    assert not (run / "broken_checkpoints").exists()
    logged = (FIXTURES / "vocoder_run" / "metrics.jsonl").read_text()
    assert (run / "metrics.jsonl").read_text() == logged
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]
    saved = np.load(FIXTURES / "vocoder_state.npz")
    assert len(leaves) == len(saved.files) > 50
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(leaf, saved[f"arr_{i}"], err_msg=f"leaf {i}")


def test_a_weights_folder_from_before_the_move_restores_the_same(tmp_path):
    from vf_jax import Restorer
    from vf_jax.restoration import networks
    maker = _maker()
    folder = tmp_path / "weights"
    shutil.copytree(FIXTURES / "weights", folder)
    restorer = Restorer.from_folder(str(folder))

    wav = maker.signal()
    mel = networks.analyse(restorer.variables["analysis"], wav[None], None,
                           jax.random.PRNGKey(0), n_frames=1 + wav.size // 441,
                           train_bn=False, dropout=False, kind="dnn")
    expected_mel = np.load(FIXTURES / "restored_mel.npy")
    assert expected_mel.std() > 1.0
    np.testing.assert_allclose(np.asarray(mel[0]), expected_mel, rtol=0,
                               atol=1e-4 * np.abs(expected_mel).max())

    restored = restorer.restore(wav, 44100)
    expected = np.load(FIXTURES / "restored.npy")
    assert restored.shape == expected.shape
    np.testing.assert_allclose(restored, expected, rtol=0, atol=1e-2 * expected.std())

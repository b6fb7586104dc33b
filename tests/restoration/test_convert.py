"""The converter: every layout the published files come in, and bad files."""

import json
import os

import numpy as np
import pytest
import torch

from tests.helpers import assert_same_tree
from vf_jax.cli import main
from vf_jax.errors import UserError
from vf_jax.restoration import convert, weights


@pytest.fixture(scope="module")
def states(oracle):
    _, vf_path, voc_path = oracle
    return (torch.load(vf_path, weights_only=True),
            torch.load(voc_path, weights_only=True))


def test_published_layout_converts(converted):
    variables, report = converted
    assert set(variables) == {"analysis", "vocoder"}
    assert set(variables["analysis"]) == {"params", "batch_stats"}
    assert report == []          # nothing unknown in the published layout


def test_parametrization_keys_equal_legacy_keys(tmp_path, oracle, states, converted):
    _, vf_path, _ = oracle
    vf_state, voc = states
    modern = {k.replace(".weight_g", ".parametrizations.weight.original0")
               .replace(".weight_v", ".parametrizations.weight.original1"): v
              for k, v in voc["generator"].items()}
    path = tmp_path / "modern.pt"
    torch.save({"generator": modern}, path)
    variables, _, _ = convert.convert(vf_path, str(path))
    assert_same_tree(variables, converted[0])


def test_lightning_checkpoint_and_embedded_folded_vocoder(tmp_path, oracle, states, converted):
    """A Lightning checkpoint whose vocoder.model.* (folded) keys take precedence."""
    _, vf_path, voc_path = oracle
    vf_state, voc = states
    folded = convert.fold_all_weight_norms(
        {k: v.numpy() for k, v in voc["generator"].items()})
    folded["generator.1.weight"] = folded["generator.1.weight"] * 2.0   # must win
    state = dict(vf_state)
    state.update({f"vocoder.model.{k}": torch.tensor(v) for k, v in folded.items()})
    state["mel.fb"] = torch.zeros(1025, 128)
    state["f_helper.stft.conv_real.weight"] = torch.zeros(3)
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": state, "epoch": 3, "global_step": 10}, path)
    variables, report, _ = convert.convert(str(path), voc_path)
    assert_same_tree(variables["analysis"], converted[0]["analysis"])
    ours = variables["vocoder"]["params"]["conv_in"]["conv"]["kernel"]
    ref = converted[0]["vocoder"]["params"]["conv_in"]["conv"]["kernel"]
    np.testing.assert_allclose(ours, 2.0 * np.asarray(ref), rtol=1e-6)
    assert any("take precedence" in line for line in report)


def test_weight_norm_folding_matches_torch():
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(4, 3, 6))
    g = conv.parametrizations.weight.original0.detach().numpy()
    v = conv.parametrizations.weight.original1.detach().numpy()
    np.testing.assert_allclose(convert.fold_weight_norm(g, v), conv.weight.detach().numpy(),
                               rtol=1e-6, atol=1e-7)


def test_unknown_keys_listed_missing_and_misshapen_keys_named(tmp_path, oracle, states):
    _, vf_path, voc_path = oracle
    vf_state, _ = states
    extra = dict(vf_state)
    extra["generator.something_new.weight"] = torch.zeros(2)
    path = tmp_path / "extra.ckpt"
    torch.save(extra, path)
    _, report, _ = convert.convert(str(path), voc_path)
    assert any("something_new" in line for line in report)

    missing = {k: v for k, v in vf_state.items() if "decoder_block3.bn1.running_var" not in k}
    torch.save(missing, path)
    with pytest.raises(UserError, match="decoder_block3.bn1.running_var"):
        convert.convert(str(path), voc_path)

    bad = dict(vf_state)
    bad["generator.denoiser.1.weight"] = torch.zeros(3, 3)
    torch.save(bad, path)
    with pytest.raises(UserError, match=r"denoiser\.1\.weight"):
        convert.convert(str(path), voc_path)


def test_truncated_foreign_and_code_running_files_fail_cleanly(tmp_path, oracle):
    _, vf_path, voc_path = oracle
    truncated = tmp_path / "truncated.ckpt"
    with open(vf_path, "rb") as f:
        truncated.write_bytes(f.read(100_000))
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    evil = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, evil)
    for path in (truncated, text, evil, tmp_path / "absent.ckpt"):
        with pytest.raises(UserError) as info:
            convert.convert(str(path), voc_path)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_cli_convert_writes_a_loadable_folder(tmp_path, oracle, converted, capsys):
    _, vf_path, voc_path = oracle
    out = tmp_path / "weights"
    assert main(["convert", "--analysis", vf_path, "--vocoder", voc_path,
                 "--out", str(out)]) == 0
    meta = json.loads((out / weights.META_FILE).read_text())
    assert meta["analysis"]["kind"] == "released"
    assert len(meta["provenance"]["analysis"]["sha256"]) == 64
    variables, _ = weights.load(str(out))
    assert_same_tree(variables, converted[0])
    # An existing folder is not replaced without --overwrite ...
    assert main(["convert", "--analysis", vf_path, "--vocoder", voc_path,
                 "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    # ... and a foreign folder never.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert main(["convert", "--analysis", vf_path, "--vocoder", voc_path,
                 "--out", str(other), "--overwrite"]) == 1
    assert (other / "thesis.tex").read_text() == "precious"
    # A failed conversion leaves nothing behind.
    assert main(["convert", "--analysis", str(tmp_path / "absent.ckpt"),
                 "--out", str(tmp_path / "never")]) == 1
    assert not (tmp_path / "never").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".vf_jax-partial")]


def test_weights_folder_with_mismatched_shapes_is_refused(tmp_path, weights_dir):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(weights_dir, copy)
    meta = json.loads((copy / weights.META_FILE).read_text())
    key = "analysis/params/unet/out/conv/kernel"
    meta["shapes"][key] = [1, 1, 32, 2]
    (copy / weights.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="misshapen"):
        weights.load(str(copy))


def test_broken_weights_folder_is_one_line_error(tmp_path, oracle):
    for broken in ("missing", "nometa", "badjson"):
        path = tmp_path / broken
        if broken != "missing":
            path.mkdir()
        if broken == "badjson":
            (path / weights.META_FILE).write_text("{")
        with pytest.raises(UserError) as info:
            weights.load(str(path))
        assert "\n" not in str(info.value)

"""Reading PyTorch checkpoints without PyTorch: what ``torch.load(weights_only=True)``
returns, in both of ``torch.save``'s layouts, and nothing that runs code."""

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch  # the reference reader (requirements-test.txt); vf_jax never imports it

from vf_jax.errors import UserError
from vf_jax.restoration import convert, weights
from vf_jax.restoration.torch_checkpoint import read_checkpoint

from helpers import assert_same_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample_state():
    """Seeded tensors of every dtype a state dict uses, in the layouts torch
    keeps: views with offsets and strides, shared storages, parameters, a
    module's state dict (an OrderedDict with ``_metadata``), plain values."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 5, generator=g)
    module = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3), torch.nn.BatchNorm1d(4))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return {
        "float32": torch.randn(3, 4, generator=g),
        "float64": torch.randn(5, generator=g, dtype=torch.float64),
        "float16": torch.randn(2, 3, generator=g).half(),
        "bfloat16": torch.randn(4, 2, generator=g).bfloat16(),
        "int64": torch.randint(-2**40, 2**40, (3,), generator=g),
        "int32": torch.randint(-1000, 1000, (2, 2), generator=g, dtype=torch.int32),
        "int8": torch.randint(-128, 127, (4,), generator=g, dtype=torch.int8),
        "uint8": torch.randint(0, 255, (4,), generator=g, dtype=torch.uint8),
        "bool": torch.rand(5, generator=g) > 0.5,
        "transposed": base.t(),
        "offset_slice": base[2:, 1:4],
        "shares_storage": base,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
        "module": module.state_dict(),
        "nested": collections.OrderedDict(a=[torch.arange(3), (torch.ones(1), 2)], b="text"),
        "plain": {"epoch": 4, "rate": 0.5, "name": "vf", "flags": [True, None]},
    }


def same(ours, theirs, where="root"):
    """``ours`` (from :func:`read_checkpoint`) is what torch loaded, exactly."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray), where
        expected = theirs.detach()
        if expected.dtype == torch.bfloat16:
            assert ours.dtype == ml_dtypes.bfloat16, where
            np.testing.assert_array_equal(ours.view(np.uint16),
                                          expected.view(torch.int16).numpy().view(np.uint16))
        else:
            assert ours.dtype == expected.numpy().dtype, where
            np.testing.assert_array_equal(ours, expected.numpy(), err_msg=where)
        assert ours.shape == tuple(expected.shape), where
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for k in theirs:
            same(ours[k], theirs[k], f"{where}.{k}")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs and type(ours) is type(theirs), where


@pytest.mark.parametrize("zip_layout", [True, False], ids=["zip", "legacy"])
def test_reads_what_torch_load_returns(tmp_path, zip_layout):
    path = tmp_path / "state.pt"
    torch.save(sample_state(), path, _use_new_zipfile_serialization=zip_layout)
    assert zipfile.is_zipfile(path) == zip_layout
    same(read_checkpoint(str(path)), torch.load(path, weights_only=True))


def test_the_oracle_checkpoints_read_bit_identical_to_torch(oracle):
    """The converter's input without PyTorch equals what it read through
    ``torch.load`` before: the same keys, values and (float32) dtypes."""
    _, vf_path, voc_path = oracle
    for path in (vf_path, voc_path):
        flat = {}

        def walk(prefix, value):
            if isinstance(value, torch.Tensor):
                flat[prefix] = (value.to(torch.float32) if value.is_floating_point()
                                else value).numpy()
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
        walk("", torch.load(path, weights_only=True))
        ours = convert.load_torch_state(path)
        assert list(ours) == list(flat)
        for k in flat:
            assert ours[k].dtype == flat[k].dtype, k
            np.testing.assert_array_equal(ours[k], flat[k], err_msg=k)


class Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


def evil_files(tmp_path):
    """Files that would run code when unpickled, in every layout."""
    target = tmp_path / "pwned"
    zip_evil = tmp_path / "zip.ckpt"
    torch.save({"x": torch.ones(2), "y": Evil(target)}, zip_evil)
    legacy_evil = tmp_path / "legacy.ckpt"
    torch.save({"y": Evil(target)}, legacy_evil, _use_new_zipfile_serialization=False)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Evil(target), protocol=2))
    # A checkpoint naming a module's class (torch.save of a whole model).
    module = tmp_path / "module.ckpt"
    torch.save(torch.nn.Linear(2, 2), module)
    # eval through builtins, hand-written into a zip checkpoint's data.pkl.
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"x": torch.ones(1)}, crafted)
    with zipfile.ZipFile(crafted) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in entries if n.endswith("/data.pkl"))
    entries[name] = (b"\x80\x02cbuiltins\neval\nq\x00X\x1d\x00\x00\x00__import__('os').system('id')"
                     b"q\x01\x85q\x02Rq\x03.")
    with zipfile.ZipFile(crafted, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    return target, [zip_evil, legacy_evil, plain, module, crafted]


def test_code_running_files_are_refused_in_one_line(tmp_path):
    target, files = evil_files(tmp_path)
    for path in files:
        with pytest.raises(UserError, match="refused") as info:
            read_checkpoint(str(path))
        assert "\n" not in str(info.value), path
    assert not target.exists()


def test_truncated_foreign_and_missing_files_fail_cleanly(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(sample_state(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    cases = {"truncated_legacy": data[:len(data) - 10], "legacy_header_only": data[:40],
             "text": b"not a checkpoint\n", "empty": b""}
    torch.save(sample_state(), path)
    cases["truncated_zip"] = path.read_bytes()[:3000]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": 1}, protocol=2)[:-1])
    cases["zip_with_a_cut_pickle"] = buffer.getvalue()
    for name, content in cases.items():
        bad = tmp_path / f"{name}.pt"
        bad.write_bytes(content)
        with pytest.raises(UserError) as info:
            read_checkpoint(str(bad))
        assert "\n" not in str(info.value), name
    with pytest.raises(UserError, match="not found"):
        read_checkpoint(str(tmp_path / "absent.pt"))


def test_converting_needs_no_pytorch(tmp_path, oracle, converted):
    """The whole ``convert`` command in a process where ``import torch`` fails."""
    _, vf_path, voc_path = oracle
    out = tmp_path / "weights"
    script = ("import sys; sys.modules['torch'] = None\n"
              "from vf_jax.cli import main\n"
              "code = main(sys.argv[1:])\n"
              "assert sys.modules['torch'] is None\n"
              "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", script, "convert", "--analysis", vf_path,
                           "--vocoder", voc_path, "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    variables, _ = weights.load(str(out))
    assert_same_tree(variables, converted[0])

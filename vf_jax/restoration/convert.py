"""Convert the published PyTorch checkpoints into a vf_jax weights folder.

Inputs (``docs/voicefixer.md``: "Two systems, one name", "Vocoder", "Inference of the package"):
- ``vf.ckpt`` (Zenodo 5600188): the two-stage analysis model; a plain state
  dict or a Lightning checkpoint (``state_dict``), keys ``generator.denoiser.*``
  and ``generator.unet.*`` (any outer prefix accepted), possibly with
  ``f_helper.*``, ``mel.fb`` and ``vocoder.model.*`` keys.
- ``model.ckpt-1490000_trimed.pt`` (Zenodo 5469951): the TFGAN generator under
  ``"generator"``, weight-normed (``weight_g``/``weight_v``, or torch >= 2.1's
  ``parametrizations.weight.original0/1``) or already folded (``weight``).
- ``vocoder.model.*`` keys inside ``vf.ckpt`` take precedence over the vocoder
  file, as in the original loader.

Files are read without PyTorch by a restricted unpickler
(:mod:`vf_jax.restoration.torch_checkpoint`): a checkpoint never runs code.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Callable

import ml_dtypes
import numpy as np

from vf_jax.errors import UserError
from vf_jax.restoration.torch_checkpoint import read_checkpoint
from vf_jax.restoration.weights import tree_shapes

Transform = Callable[[np.ndarray], np.ndarray]

# ----------------------------------------------------------------- reading ---


def load_torch_state(path: str) -> dict[str, np.ndarray]:
    """Tensors of a PyTorch checkpoint as numpy arrays (floating point ones
    as float32), flattened to dotted keys (nested dicts such as Lightning's
    ``state_dict`` or the vocoder's ``generator`` are joined with dots). Read
    by :func:`vf_jax.restoration.torch_checkpoint.read_checkpoint`: no
    PyTorch, and no code of the file runs."""
    obj = read_checkpoint(path)
    flat: dict[str, np.ndarray] = {}

    def walk(prefix, value):
        if isinstance(value, np.ndarray):
            floating = np.issubdtype(value.dtype, np.floating) or value.dtype == ml_dtypes.bfloat16
            flat[prefix] = value.astype(np.float32) if floating else value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
    walk("", obj)
    if not flat:
        raise UserError(f"{path} holds no tensors")
    return flat


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------- weight norm ---


def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w = g v / ||v||``, the norm over every axis but the first (PyTorch's
    ``weight_norm(dim=0)``; for ConvTranspose the first axis is the input)."""
    axes = tuple(range(1, v.ndim))
    norm = np.sqrt(np.sum(v.astype(np.float64) ** 2, axis=axes, keepdims=True))
    return (g.astype(np.float64).reshape(norm.shape) * v / norm).astype(np.float32)


def fold_all_weight_norms(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replace every ``X.weight_g/X.weight_v`` or
    ``X.parametrizations.weight.original0/1`` pair by ``X.weight``."""
    out = dict(state)
    patterns = [(".weight_g", ".weight_v"),
                (".parametrizations.weight.original0",
                 ".parametrizations.weight.original1")]
    for gs, vs in patterns:
        for key in [k for k in state if k.endswith(gs)]:
            base = key[:-len(gs)]
            if base + vs in state:
                out[base + ".weight"] = fold_weight_norm(state[key], state[base + vs])
                del out[key], out[base + vs]
    return out


# ------------------------------------------------------------ key maps ---

def conv2d_kernel(w):            # (O, I, kh, kw) -> (kh, kw, I, O)
    return np.transpose(w, (2, 3, 1, 0))


def conv_transpose2d_kernel(w):  # (I, O, kh, kw) -> (kh, kw, I, O)
    return np.transpose(w, (2, 3, 0, 1))


def conv1d_kernel(w):            # (O, I, k) -> (k, I, O)
    return np.transpose(w, (2, 1, 0))


def conv_transpose1d_kernel(w):  # (I, O, k) -> (k, I, O)
    return np.transpose(w, (2, 0, 1))


def dense_kernel(w):             # (O, I) -> (I, O)
    return np.transpose(w)


def identity(w):
    return w


_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _bn(path):
    return {k: (coll, path + (leaf,), identity) for k, (coll, leaf) in _BN.items()}


def _conv2d(path, bias=False):
    m = {"weight": ("params", path + ("conv", "kernel"), conv2d_kernel)}
    if bias:
        m["bias"] = ("params", path + ("conv", "bias"), identity)
    return m


def _conv_block(path):
    m = {}
    for sub, val in [("conv1", _conv2d(path + ("conv1",))),
                     ("conv2", _conv2d(path + ("conv2",))),
                     ("bn1", _bn(path + ("bn1",))), ("bn2", _bn(path + ("bn2",))),
                     ("shortcut", _conv2d(path + ("shortcut",), bias=True))]:
        m.update({f"{sub}.{k}": v for k, v in val.items()})
    return m


def analysis_key_map() -> dict[str, tuple[str, tuple, Transform]]:
    """``denoiser.*`` / ``unet.*`` torch keys -> (collection, flax path, transform)."""
    m: dict[str, tuple[str, tuple, Transform]] = {}

    def add(prefix, sub):
        m.update({f"{prefix}.{k}": v for k, v in sub.items()})

    den = ("denoiser",)
    for i in (0, 3, 9, 13):
        add(f"denoiser.{i}", _bn(den + (f"l{i}", "bn")))
    for i in (1, 4, 11, 15):
        m[f"denoiser.{i}.weight"] = ("params", den + (f"l{i}", "kernel"), dense_kernel)
        m[f"denoiser.{i}.bias"] = ("params", den + (f"l{i}", "bias"), identity)
    for i in (7, 8):
        add(f"denoiser.{i}.bn", _bn(den + (f"l{i}", "bn", "bn")))
        for layer in range(2):
            for suffix, name in (("", f"l{layer}"), ("_reverse", f"l{layer}_reverse")):
                p = den + (f"l{i}", "gru", name)
                g = f"denoiser.{i}.gru"
                m[f"{g}.weight_ih_l{layer}{suffix}"] = ("params", p + ("kernel_ih",), dense_kernel)
                m[f"{g}.weight_hh_l{layer}{suffix}"] = ("params", p + ("kernel_hh",), dense_kernel)
                m[f"{g}.bias_ih_l{layer}{suffix}"] = ("params", p + ("bias_ih",), identity)
                m[f"{g}.bias_hh_l{layer}{suffix}"] = ("params", p + ("bias_hh",), identity)
    m.update(resunet_key_map(prefix="unet.", path=("unet",)))
    return m


def resunet_key_map(prefix: str = "", path: tuple = ()) -> dict[str, tuple[str, tuple, Transform]]:
    """Keys of the original ``UNetResComplex_100Mb``."""
    m: dict[str, tuple[str, tuple, Transform]] = {}

    def add(torch_prefix, sub):
        m.update({f"{prefix}{torch_prefix}.{k}": v for k, v in sub.items()})

    for i in range(1, 7):
        for j in range(1, 5):
            add(f"encoder_block{i}.conv_block{j}",
                _conv_block(path + (f"encoder{i}", f"block{j}")))
        add(f"decoder_block{i}.bn1", _bn(path + (f"decoder{i}", "bn1")))
        m[f"{prefix}decoder_block{i}.conv1.weight"] = (
            "params", path + (f"decoder{i}", "up_kernel"), conv_transpose2d_kernel)
        for j in range(2, 6):
            add(f"decoder_block{i}.conv_block{j}",
                _conv_block(path + (f"decoder{i}", f"block{j - 1}")))
    add("conv_block7", _conv_block(path + ("centre",)))
    add("after_conv_block1", _conv_block(path + ("head",)))
    add("after_conv2", _conv2d(path + ("out",), bias=True))
    return m


def vocoder_key_map() -> dict[str, tuple[str, tuple, Transform]]:
    """Folded TFGAN generator keys -> (collection, flax path, transform)."""
    m: dict[str, tuple[str, tuple, Transform]] = {}

    def conv(torch_prefix, path, fn=conv1d_kernel):
        m[f"{torch_prefix}.weight"] = ("params", path + ("kernel",), fn)
        m[f"{torch_prefix}.bias"] = ("params", path + ("bias",), identity)

    for i in range(5):
        conv(f"condnet.{2 * i}", (f"cond{i}", "conv"))
    conv("generator.1", ("conv_in", "conv"))
    conv("generator.16", ("conv_out", "conv"))
    for stage, (up, res) in enumerate([(3, 4), (6, 7), (9, 10), (12, 13)]):
        conv(f"generator.{up}.layer", (f"up{stage}",), conv_transpose1d_kernel)
        for i in range(8):
            conv(f"generator.{res}.layers.{i}.1", (f"res{stage}", f"layer{i}_dilated", "conv"))
            conv(f"generator.{res}.layers.{i}.3", (f"res{stage}", f"layer{i}_pointwise", "conv"))
    return m


# Keys that exist in the published files but carry nothing the model uses.
_EXPECTED_UNUSED = re.compile(
    r"(num_batches_tracked$|\.skip_conv\.|^f_helper\.|^mel\.fb$|^stft\.|^istft\.)")


# ------------------------------------------------------------- building ---


def _set(tree: dict, path: tuple, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def build_variables(state: dict[str, np.ndarray], key_map, template, what: str,
                    report: list[str]) -> dict:
    """Map torch tensors onto a Flax variable tree shaped like ``template``.

    Raises ``UserError`` naming missing keys or wrong shapes; records unknown
    keys (ignored) in ``report``.
    """
    expected = {tuple(k.split("/")): tuple(v) for k, v in tree_shapes(template).items()}
    variables: dict = {}
    seen = set()
    unknown, bad_shape = [], []
    for key, value in state.items():
        if key not in key_map:
            if not _EXPECTED_UNUSED.search(key):
                unknown.append(key)
            continue
        coll, path, fn = key_map[key]
        arr = np.ascontiguousarray(fn(value))
        want = expected.get((coll,) + path)
        if want is None:
            unknown.append(key)
            continue
        if tuple(arr.shape) != want:
            bad_shape.append(f"{key} {tuple(value.shape)} (needs {want} after transpose)")
            continue
        _set(variables.setdefault(coll, {}), path, arr.astype(np.float32))
        seen.add((coll,) + path)
    inverse = {(c,) + p: k for k, (c, p, _) in key_map.items()}
    missing = [inverse.get(cp, "/".join(cp)) for cp in expected if cp not in seen]
    if bad_shape or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): " + ", ".join(sorted(missing)[:8])
                         + (" ..." if len(missing) > 8 else ""))
        if bad_shape:
            parts.append(f"{len(bad_shape)} wrong shape(s): " + ", ".join(bad_shape[:4])
                         + (" ..." if len(bad_shape) > 4 else ""))
        raise UserError(f"{what}: " + "; ".join(parts))
    if unknown:
        report.append(f"{what}: ignored {len(unknown)} unknown key(s): "
                      + ", ".join(sorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else ""))
    return variables


_ANALYSIS_KEY = re.compile(r"(?:^|\.)((?:denoiser|unet)\..*)$")
_VOCODER_IN_ANALYSIS = re.compile(r"(?:^|\.)vocoder\.model\.(.*)$")


def split_analysis_state(state: dict[str, np.ndarray]):
    """Separate a ``vf.ckpt`` state into analysis keys (``denoiser.*``,
    ``unet.*``), embedded vocoder keys and the rest."""
    analysis, vocoder, rest = {}, {}, {}
    for key, value in state.items():
        mv = _VOCODER_IN_ANALYSIS.search(key)
        ma = _ANALYSIS_KEY.search(key)
        if mv:
            vocoder[mv.group(1)] = value
        elif ma and not key.startswith("vocoder."):
            analysis[ma.group(1)] = value
        else:
            rest[key] = value
    return analysis, vocoder, rest


def vocoder_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The generator's keys of a vocoder checkpoint (under ``generator.`` or bare)."""
    sub = {k[len("generator."):]: v for k, v in state.items()
           if k.startswith("generator.condnet.") or k.startswith("generator.generator.")}
    return sub or state


def convert(analysis_path: str, vocoder_path: str | None):
    """Read both checkpoints; return ``(variables, report, provenance)``.

    ``variables = {"analysis": {"params", "batch_stats"}, "vocoder": {"params"}}``.
    """
    from vf_jax.models import registry as models  # template shapes without running the networks

    report: list[str] = []
    a_state = load_torch_state(analysis_path)
    if "state_dict" in {k.split(".")[0] for k in a_state}:
        a_state = {k[len("state_dict."):]: v for k, v in a_state.items()
                   if k.startswith("state_dict.")}
    analysis, embedded_vocoder, rest = split_analysis_state(a_state)
    if not analysis:
        raise UserError(f"{analysis_path} has no analysis-model keys (denoiser.*, unet.*); "
                        "is it vf.ckpt?")
    a_vars = build_variables(analysis, analysis_key_map(), models.analysis_template(),
                             "analysis", report)
    other = [k for k in rest if not _EXPECTED_UNUSED.search(k)]
    if other:
        report.append(f"analysis: ignored {len(other)} unknown key(s): "
                      + ", ".join(sorted(other)[:10]))

    v_state: dict[str, np.ndarray] = {}
    if vocoder_path is not None:
        v_state = fold_all_weight_norms(vocoder_state(load_torch_state(vocoder_path)))
    if embedded_vocoder:
        embedded = fold_all_weight_norms(embedded_vocoder)
        overridden = sum(1 for k in embedded if k in v_state)
        v_state.update(embedded)
        report.append(f"vocoder: {len(embedded)} tensor(s) from {os.path.basename(analysis_path)}"
                      f" take precedence ({overridden} replace the vocoder file's)")
    if not v_state:
        raise UserError("no vocoder weights: give --vocoder model.ckpt-1490000_trimed.pt")
    v_vars = build_variables(v_state, vocoder_key_map(), models.vocoder_template(),
                             "vocoder", report)

    provenance = {"analysis": {"file": os.path.basename(analysis_path),
                               "sha256": file_sha256(analysis_path)}}
    if vocoder_path is not None:
        provenance["vocoder"] = {"file": os.path.basename(vocoder_path),
                                 "sha256": file_sha256(vocoder_path)}
    return {"analysis": a_vars, "vocoder": v_vars}, report, provenance

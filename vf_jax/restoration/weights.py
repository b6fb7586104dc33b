"""The weights folder: orbax-saved variables plus a small self-describing JSON.

Layout::

    DIR/vf_jax.json     format, model kinds, front end, provenance
    DIR/variables/      orbax StandardCheckpointer: {"analysis": {"params",
                        "batch_stats"}, "vocoder": {"params"}}

Restoring needs neither PyTorch nor the original files.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile

import jax
import numpy as np

from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.errors import UserError, first_line

FORMAT = "vf_jax-weights"
VERSION = 1
META_FILE = "vf_jax.json"
VARIABLES_DIR = "variables"


def default_weights_dir() -> str:
    """``$VF_JAX_WEIGHTS``, else ``~/.cache/vf_jax/weights`` (the documented cache)."""
    env = os.environ.get("VF_JAX_WEIGHTS")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".cache", "vf_jax", "weights")


def describe(analysis_kind: str = "released", provenance: dict | None = None,
             notes: list[str] | None = None, vocoder_size: dict | None = None,
             analysis_width: float = 1.0) -> dict:
    """The folder's JSON: ``vocoder_size`` (``channels``, ``cond_channels``,
    ``resstack_depth``) when the generator is not the published size, and
    ``analysis_width`` when the analysis network is not."""
    width = {} if analysis_width == 1.0 else {"width": float(analysis_width)}
    return {
        "format": FORMAT,
        "version": VERSION,
        "analysis": {"kind": analysis_kind, "sample_rate": SAMPLE_RATE, "n_fft": 2048,
                     "hop": 441, "n_mels": 128, **width},
        "vocoder": {"kind": "tfgan", "sample_rate": SAMPLE_RATE, "weight_norm": "folded",
                    **{k: int(v) for k, v in (vocoder_size or {}).items()}},
        "provenance": provenance or {},
        "notes": notes or [],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def analysis_kind(meta: dict | None) -> str:
    """The analysis network a folder records (none: the released model)."""
    return (meta or {}).get("analysis", {}).get("kind", "released")


def analysis_width(meta: dict | None) -> float:
    """The analysis network's width a folder records (none: 1, the published sizes)."""
    return float((meta or {}).get("analysis", {}).get("width", 1.0))


def check_target(out_dir: str, overwrite: bool = False) -> str:
    """Whether :func:`save` may write ``out_dir``: absent, empty, or (with
    ``overwrite``) a weights folder, in a folder it can write into; a
    one-line :class:`UserError` if not (callers that fetch or compute first
    ask before). Returns the parent folder, created."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        if not overwrite:
            raise UserError(f"{out_dir} exists and is not empty (use --overwrite to replace it)")
        if not is_weights_dir(out_dir):
            raise UserError(f"{out_dir} is not a weights folder; refusing to replace it")
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        if not os.access(parent, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise UserError(f"cannot write the weights folder into {parent}: "
                        f"{e.strerror or e}") from None
    return parent


def save(out_dir: str, variables: dict, meta: dict, overwrite: bool = False) -> None:
    """Write a weights folder atomically: built beside ``out_dir``, then renamed."""
    import orbax.checkpoint as ocp
    out_dir = os.path.abspath(out_dir)
    parent = check_target(out_dir, overwrite)
    try:
        staging = tempfile.mkdtemp(prefix=".vf_jax-partial-", dir=parent)
        os.chmod(staging, 0o755)
    except OSError as e:
        raise UserError(f"cannot write the weights folder into {parent}: "
                        f"{e.strerror or e}") from None
    try:
        ckptr = ocp.StandardCheckpointer()
        tree = jax.tree_util.tree_map(np.asarray, variables)
        ckptr.save(os.path.join(staging, VARIABLES_DIR), tree)
        ckptr.wait_until_finished()
        meta = dict(meta, shapes=tree_shapes(tree))
        with open(os.path.join(staging, META_FILE), "w") as f:
            json.dump(meta, f, indent=2)
        if os.path.exists(out_dir):
            old = out_dir + ".old-" + os.path.basename(staging)
            os.replace(out_dir, old)
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def tree_shapes(tree) -> dict[str, list[int]]:
    """``{"analysis/params/unet/...": shape}`` of every array in ``tree``."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(k.key) for k in path): list(np.shape(leaf)) for path, leaf in flat}


def shape_template(meta: dict) -> dict:
    """The variables a folder holds as float32 ``jax.ShapeDtypeStruct`` leaves,
    from its recorded shapes: enough to compile the networks before the arrays
    are read."""
    template: dict = {}
    for key, shape in meta.get("shapes", {}).items():
        *parents, leaf = key.split("/")
        node = template
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = jax.ShapeDtypeStruct(tuple(shape), np.float32)
    return template


def is_weights_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, META_FILE))


def load_meta(path: str) -> dict:
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isdir(path):
        raise UserError(f"weights folder not found: {path} (VoiceFixer's published "
                        "weights: `python -m vf_jax weights download`, see README)")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path} is not a vf_jax weights folder (no {META_FILE})") from None
    except (OSError, ValueError) as e:
        raise UserError(f"broken weights folder {path}: {META_FILE}: {e}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(f"{path}: unsupported weights format "
                        f"{meta.get('format')!r} version {meta.get('version')!r}")
    return meta


def load(path: str) -> tuple[dict, dict]:
    """Read a weights folder: ``(variables, meta)``.

    The arrays are checked against the shapes recorded when the folder was
    written (which the converter checked against the networks), so a damaged
    or mismatched folder fails here, not halfway through a restoration.
    """
    import orbax.checkpoint as ocp

    from vf_jax.models import registry as models
    meta = load_meta(path)
    kind = analysis_kind(meta)
    if kind not in models.ANALYSIS_KINDS:
        raise UserError(f"{path}: unknown analysis model kind {kind!r}")
    try:
        # orbax takes absolute paths only.
        variables = ocp.StandardCheckpointer().restore(
            os.path.join(os.path.abspath(path), VARIABLES_DIR))
    except Exception as e:   # missing, truncated or mismatched files
        first = first_line(e, 300)
        raise UserError(f"broken weights folder {path}: {first}") from None
    expected = meta.get("shapes")
    if not isinstance(expected, dict):
        raise UserError(f"broken weights folder {path}: {META_FILE} lists no shapes")
    found = tree_shapes(variables)
    if found != expected:
        wrong = sorted((set(found) ^ set(expected))
                       | {k for k in found if k in expected and found[k] != expected[k]})
        raise UserError(f"broken weights folder {path}: {len(wrong)} array(s) missing or "
                        f"misshapen, e.g. {wrong[0]}")
    return variables, meta

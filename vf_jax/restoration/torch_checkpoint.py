"""PyTorch checkpoints read without PyTorch, and without running their code.

A ``torch.save`` file is a pickle whose tensors point at raw storages
(PyTorch's ``torch/serialization.py`` is the reference for both layouts):

- the zip layout (PyTorch >= 1.6): ``<name>/data.pkl`` holds the object,
  each storage is the entry ``<name>/data/<key>``, ``<name>/byteorder`` says
  ``little`` or ``big`` (absent: little);
- the legacy layout: four pickles in a row (a magic number, the protocol
  version 1001, the system's sizes and byte order, the object), a pickle of
  the storage keys, then per key its element count (int64) and its bytes.

The object is unpickled by :class:`RestrictedUnpickler`, which knows only the
globals a state dict needs (ordered dicts, the tensor and parameter
rebuilders, the storage types) and refuses every other one with a one-line
:class:`vf_jax.errors.UserError`: a pickle can run code only through the
globals it names, so a file that asks for ``os.system`` (or for a module's
class) is refused before anything of it runs, as ``torch.load(weights_only=True)``
promises. Tensors come back as numpy arrays of their own dtype (bfloat16 as
``ml_dtypes.bfloat16``), laid out by their sizes and strides; containers as
dicts, lists and tuples.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

from vf_jax.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> element type (the types a state dict's tensors use).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}


class StorageType:
    """A storage class named by the pickle (``torch.FloatStorage``): its dtype."""

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class Storage:
    """One storage's elements, read now (zip) or once the legacy file's
    storages follow its object (``data`` None until then)."""

    def __init__(self, dtype: np.dtype, numel: int, data: np.ndarray | None = None):
        self.dtype, self.numel, self.data = dtype, numel, data

    def elements(self) -> np.ndarray:
        if self.data is None:
            raise UserError("a tensor's storage is missing from the checkpoint")
        return self.data


class StorageView:
    """Elements ``offset .. offset + numel`` of a legacy file's root storage."""

    def __init__(self, root: Storage, offset: int, numel: int):
        self.root, self.offset, self.numel, self.dtype = root, offset, numel, root.dtype

    def elements(self) -> np.ndarray:
        return self.root.elements()[self.offset:self.offset + self.numel]


class PendingTensor:
    """A tensor whose storage is read later (the legacy layout)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)

    def array(self) -> np.ndarray:
        elements = self.storage.elements()
        if not self.size:
            count = 1
        else:
            count = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride)) \
                if all(self.size) else 0
        if self.offset < 0 or any(s < 0 for s in self.stride) \
                or self.offset + count > elements.size:
            raise UserError("a tensor reaches past its storage in the checkpoint")
        base = elements[self.offset:]
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base, self.size, tuple(s * itemsize for s in self.stride), writeable=False)
        return np.array(view)       # a copy: contiguous, owning its memory


def rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                   backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` (and the older ``_rebuild_tensor``)."""
    if not isinstance(storage, (Storage, StorageView)):
        raise UserError("a tensor without a storage in the checkpoint")
    tensor = PendingTensor(storage, storage_offset, size, stride)
    root = storage.root if isinstance(storage, StorageView) else storage
    return tensor.array() if root.data is not None else tensor


def rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """``torch._utils._rebuild_parameter[_with_state]``: a parameter is its data."""
    return data


def latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode``, which protocol 2 uses for ``bytes``: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UserError("refused: a bytes object in an encoding other than latin-1")
    return text.encode("latin1")


# "module.name" -> what the unpickler gives for it. Nothing else is found.
ALLOWED = {
    "collections.OrderedDict": collections.OrderedDict,
    "_codecs.encode": latin1_bytes,
    "torch.Size": tuple,
    "torch._utils._rebuild_tensor_v2": rebuild_tensor,
    "torch._utils._rebuild_tensor": rebuild_tensor,
    "torch._utils._rebuild_parameter": rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": rebuild_parameter,
    **{f"torch.{name}": StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that finds only :data:`ALLOWED` globals; storages come
    from ``storage_for(pid)`` (the layout's persistent ids)."""

    def __init__(self, file, storage_for, path: str):
        super().__init__(file)
        self.storage_for, self.path = storage_for, path

    def find_class(self, module, name):
        found = ALLOWED.get(f"{module}.{name}")
        if found is None:
            raise UserError(f"refused {self.path}: it asks for {module}.{name}, which a "
                            "weights file does not need (a pickle can run code through it)")
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and isinstance(pid[1], StorageType)):
            raise UserError(f"refused {self.path}: an unknown persistent object {pid!r:.60}")
        return self.storage_for(pid)


def read_checkpoint(path: str):
    """The object a ``torch.save`` file at ``path`` holds, tensors as numpy
    arrays (see the module). A missing, truncated or foreign file, or one that
    asks for anything else, is a one-line :class:`UserError`."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path)
        else:
            obj = _read_legacy(path)
        return _finished(obj)
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError,
            TypeError, AttributeError, IndexError, struct.error, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read {path} as a PyTorch checkpoint: {first}") from None


def _read_zip(path: str):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"cannot read {path} as a PyTorch checkpoint: "
                            "no single <name>/data.pkl in the archive")
        prefix = pickles[0][:-len("data.pkl")]
        order = "little"
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise UserError(f"cannot read {path}: unknown byte order {order!r:.20}")
        storages: dict[str, Storage] = {}

        def storage_for(pid):
            _, kind, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                raw = archive.read(f"{prefix}data/{key}")
                dtype = kind.dtype.newbyteorder("<" if order == "little" else ">")
                data = np.frombuffer(raw, dtype, count=len(raw) // dtype.itemsize)
                storages[key] = Storage(kind.dtype, int(numel),
                                        data.astype(kind.dtype, copy=False))
            return storages[key]

        with archive.open(pickles[0]) as f:
            return RestrictedUnpickler(io.BytesIO(f.read()), storage_for, path).load()


def _read_legacy(path: str):
    with open(path, "rb") as f:
        header = lambda: RestrictedUnpickler(f, _no_storage(path), path).load()
        if header() != LEGACY_MAGIC:
            raise UserError(f"cannot read {path} as a PyTorch checkpoint: "
                            "neither a zip archive nor a legacy torch.save file")
        if header() != LEGACY_PROTOCOL:
            raise UserError(f"cannot read {path}: unsupported legacy protocol")
        sys_info = header()
        little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
        roots: dict[str, Storage] = {}

        def storage_for(pid):
            _, kind, key, _location, numel = pid[:5]
            view = pid[5] if len(pid) > 5 else None
            key = str(key)
            root = roots.setdefault(key, Storage(kind.dtype, int(numel)))
            if view is not None:
                _view_key, offset, size = view
                return StorageView(root, int(offset), int(size))
            return root

        obj = RestrictedUnpickler(f, storage_for, path).load()
        keys = header()
        for key in keys:
            root = roots.get(str(key))
            if root is None:
                raise UserError(f"cannot read {path}: a storage the object does not name")
            (numel,) = struct.unpack("<q" if little else ">q", f.read(8))
            dtype = root.dtype.newbyteorder("<" if little else ">")
            raw = f.read(numel * dtype.itemsize)
            if len(raw) != numel * dtype.itemsize:
                raise UserError(f"cannot read {path} as a PyTorch checkpoint: truncated")
            root.data = np.frombuffer(raw, dtype).astype(root.dtype, copy=False)
        return obj


def _no_storage(path: str):
    def refuse(pid):
        raise UserError(f"refused {path}: a storage where none belongs")
    return refuse


def _finished(obj):
    """``obj`` with every :class:`PendingTensor` made an array and ordered
    dicts made plain dicts (their order kept)."""
    if isinstance(obj, PendingTensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _finished(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finished(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finished(v) for v in obj)
    if isinstance(obj, (Storage, StorageView, StorageType)):
        raise UserError("a bare storage in the checkpoint, where tensors belong")
    return obj

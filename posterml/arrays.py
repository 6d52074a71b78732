"""The plain files a saved model is made of: named numeric arrays that load without
unpickling anything, and JSON objects (``read_json_object``).

Saved models keep their fitted arrays in ``.npz`` archives. ``np.load`` with
``allow_pickle=False`` refuses pickled content but with terse messages and lazily (an
object array fails only when read); ``load_arrays`` reads everything at once and names the
file and array that a tampered model tried to smuggle Python objects into.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save named numeric arrays as an ``.npz`` that loads with ``allow_pickle=False``."""
    plain = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"{path}: array {name!r} holds Python objects; save numbers only")
        plain[name] = array
    np.savez(path, allow_pickle=False, **plain)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` written by ``save_arrays``, read with ``allow_pickle=False``.

    Anything that would need Python objects rebuilt (a serialised object instead of an
    archive, an array of objects) is a ``ValueError`` naming the file and the array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a saved model keeps its arrays here)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a plain .npz archive of numeric arrays ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array, not an .npz archive of named arrays")
    arrays = {}
    with loaded:
        for name in loaded.files:
            try:
                arrays[name] = loaded[name]
            except ValueError as exc:  # numpy's "Object arrays cannot be loaded ..."
                raise ValueError(
                    f"{path}: array {name!r} holds Python objects (rebuilding them could run "
                    f"code), refused ({exc})"
                ) from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{path}: array {name!r} is unreadable ({exc})") from None
    return arrays


def read_json_object(path: Path, missing: str) -> dict:
    """The JSON object in ``path``; ``missing`` is the message when the file is absent.

    Malformed or non-object content is a ``ValueError`` naming the file, never a traceback
    from the JSON parser."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {missing}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data

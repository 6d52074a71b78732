"""Where posterml keeps generated data, converted weights and feature caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$POSTERML_CACHE_DIR``, else ``~/.cache/posterml``; created on first use."""
    path = Path(os.environ.get("POSTERML_CACHE_DIR", Path.home() / ".cache" / "posterml"))
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Progress bars: the one way posterml shows how far a long loop is (decoding, palettes,
downloads, batch prediction).

Every bar looks the same (rate and ETA on stderr, so stdout stays clean for run ids and
csv paths) and every command switches it off the same way (``--no-progress``). Messages
printed while a bar is drawn go through :func:`write_line`, which keeps the bar intact.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    *,
    unit: str = "img",
    iterable: Iterable | None = None,
) -> tqdm:
    """A tqdm bar on stderr showing items/s and ETA; a silent no-op bar when not ``enabled``.

    Use it as a context manager and call ``update``, or pass ``iterable`` and loop over the
    bar (``total`` then defaults to its length).
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.1,  # rates move slowly: one slow poster should not swing the ETA
    )


def write_line(message: str) -> None:
    """Print ``message`` on stderr above any progress bar being drawn, without tearing it."""
    tqdm.write(message, file=sys.stderr)


def hide_library_bars() -> None:
    """``--no-progress`` means no bar at all: MLflow's "Downloading artifacts" bar, drawn
    when a model is loaded, goes too (91 redrawn lines in a CI log otherwise)."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

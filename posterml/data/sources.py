"""Where a run's posters come from: the generated demo set or a folder with ``labels.csv``.

The dispatch lives above ``dataset`` (folders) and ``synthetic`` (which builds its set as a
folder), so neither imports the other back.
"""

from __future__ import annotations

from pathlib import Path

from posterml.data.dataset import PosterDataset, load_folder
from posterml.data.synthetic import synthetic_dataset

SYNTHETIC = "synthetic"


def load_dataset(source: str | Path, **synthetic_options: int) -> PosterDataset:
    """``"synthetic"`` gives the generated demo set; anything else is a folder path."""
    if str(source) == SYNTHETIC:
        return synthetic_dataset(**synthetic_options)
    return load_folder(source)

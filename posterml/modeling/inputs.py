"""A run's data: the dataset and its splits, then model inputs per split.

Unreadable images are reported and skipped here, once, so everything downstream sees only
posters that have features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from posterml.data.dataset import PosterDataset
from posterml.data.sources import load_dataset
from posterml.data.splits import Splits, make_splits
from posterml.modeling.families import Family
from posterml.modeling.settings import (
    DETAIL_VIEW,
    IMAGE_VIEW,
    OCR_VIEW,
    ExperimentConfig,
    view_parts,
)

log = logging.getLogger("posterml")


@dataclass
class FeatureSets:
    """Model inputs and targets per split, after dropping unreadable images."""

    X: dict[str, np.ndarray]
    Y: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]
    years: dict[str, np.ndarray]
    failures: list[tuple[str, str]]
    featurizer: object
    seconds: float
    texts: dict[str, np.ndarray] | None = None  # what OCR read per poster, with the words view
    reader: object = None  # the OcrReader that read them
    crops: dict[str, np.ndarray] | None = None  # mean crop features, with the detail view


def load_data(config: ExperimentConfig) -> tuple[PosterDataset, Splits]:
    """The dataset (a seeded subset of ``max_posters`` if asked) and its splits."""
    dataset = load_dataset(config.data)
    dataset = dataset.sample(config.max_posters, config.seed)
    splits = make_splits(
        dataset, seed=config.seed, train_years=config.train_years, test_years=config.test_years
    )
    return dataset, splits


def build_features(
    family: Family, dataset: PosterDataset, splits: Splits, views: str = IMAGE_VIEW
) -> FeatureSets:
    """Fit the featurizer on train images, transform every split, skip unreadable images;
    with ``ocr`` in ``views`` also read the words on every poster, with ``detail`` the
    features of its square crops (both cached)."""
    start = time.perf_counter()
    parts = view_parts(views)
    featurizer = family.featurizer()
    if DETAIL_VIEW in parts and (
        getattr(featurizer, "kind", "") != "backbone" or getattr(featurizer, "cut", "")
    ):
        raise ValueError(
            f"views {views!r}: the detail view needs pooled pretrained-backbone features; "
            f"the {family.name} family has none (use resnet_svm or resnet_mlp)"
        )
    by_id = dataset.frame.set_index("poster_id")["image"]
    featurizer.fit([by_id[i] for i in splits.train])
    all_ids = np.concatenate([ids for _, ids in splits.items()])
    result = featurizer.transform_paths([by_id[i] for i in all_ids])
    row_of = {pid: k for k, pid in enumerate(all_ids[result.ok])}
    labels = pd.DataFrame(dataset.labels, index=dataset.ids)
    year_of = dataset.frame.set_index("poster_id")["year"]
    X, Y, ids, years = {}, {}, {}, {}
    for name, split_ids in splits.items():
        kept = np.array([i for i in split_ids if i in row_of], dtype=object)
        ids[name] = kept
        years[name] = year_of.loc[list(kept)].to_numpy(dtype=np.int64)
        X[name] = result.features[[row_of[i] for i in kept]] if len(kept) else result.features[:0]
        Y[name] = (
            labels.loc[list(kept)].to_numpy(dtype=np.uint8)
            if len(kept)
            else np.zeros((0, dataset.labels.shape[1]), np.uint8)
        )
    read_ids = all_ids[result.ok]
    read_paths = [by_id[i] for i in read_ids]
    texts, reader, crops = None, None, None
    if OCR_VIEW in parts:
        from posterml.features.ocr import OcrReader

        reader = OcrReader()
        found, _ = reader.read_paths(read_paths)
        text_of = dict(zip(read_ids, found, strict=True))
        texts = {
            name: np.array([text_of[i] or "" for i in kept], dtype=str).reshape(-1)
            for name, kept in ids.items()
        }
    if DETAIL_VIEW in parts:
        crops = _crop_features(featurizer, read_ids, read_paths, result.features, ids)
    return FeatureSets(
        X,
        Y,
        ids,
        years,
        list(result.failures),
        featurizer,
        time.perf_counter() - start,
        texts,
        reader,
        crops,
    )


def _crop_features(featurizer, read_ids, read_paths, whole, ids) -> dict[str, np.ndarray]:
    """Mean crop features per split (``posterml.features.crops``). A poster whose crops
    cannot be read though its whole picture was (the file changed in between) keeps its
    whole-poster features, in the same space, with a warning."""
    from posterml.features.crops import CropFeatures

    found = CropFeatures(featurizer).transform_paths(read_paths)
    vectors = whole.copy()  # one row per read poster, in read_ids' order
    vectors[found.ok] = found.features
    for path, reason in found.failures:
        log.warning("detail view: %s kept its whole picture (%s)", path, reason)
    crop_of = dict(zip(read_ids, vectors, strict=True))
    dim = whole.shape[1:]
    return {
        name: np.stack([crop_of[i] for i in kept]) if len(kept) else np.zeros((0, *dim), np.float32)
        for name, kept in ids.items()
    }

"""Seeded multilabel-stratified splits and period (release year) selection.

The study split 70/20/10 into train/validation/test. Iterative stratification keeps every
genre's share similar across splits, which matters for rare genres (TV Movie, Western).
Periods make the modern-to-vintage question a parameter: train on ``2010-2019``, test on
``1970-1979``, and the second period becomes a separate cross-period test set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from posterml.data.dataset import DatasetError, PosterDataset

MIN_POSTERS = 3  # one each for train, validation and test
_PERIOD = re.compile(r"^\s*(\d{4})?\s*(-)?\s*(\d{4})?\s*$")


@dataclass(frozen=True)
class Period:
    """An inclusive release-year range; ``None`` ends are open."""

    start: int | None = None
    end: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Period:
        """``"2010-2019"``, ``"1970"`` (one year), ``"-1979"``, ``"1990-"``, or empty (all)."""
        if text is None or not str(text).strip() or str(text).strip().lower() == "all":
            return cls()
        match = _PERIOD.match(str(text))
        if not match or not (match.group(1) or match.group(3)):
            raise ValueError(f"bad period {text!r}: use e.g. 2010-2019, 1990-, -1979 or 1975")
        start, dash, end = match.groups()
        if not dash:  # a single year
            return cls(int(start), int(start))
        period = cls(int(start) if start else None, int(end) if end else None)
        if period.start is not None and period.end is not None and period.start > period.end:
            raise ValueError(f"bad period {text!r}: start after end")
        return period

    def mask(self, years: np.ndarray) -> np.ndarray:
        keep = np.ones(len(years), dtype=bool)
        if self.start is not None:
            keep &= years >= self.start
        if self.end is not None:
            keep &= years <= self.end
        return keep

    def __str__(self) -> str:
        if self.start is None and self.end is None:
            return "all"
        return f"{self.start or ''}-{self.end or ''}"


@dataclass
class Splits:
    """Poster ids per split. ``cross_period`` is empty unless a distinct test period was given."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    cross_period: np.ndarray
    train_period: Period
    test_period: Period

    @property
    def has_cross_period(self) -> bool:
        return len(self.cross_period) > 0

    def items(self) -> list[tuple[str, np.ndarray]]:
        named = [("train", self.train), ("val", self.val), ("test", self.test)]
        return named + ([("cross_period", self.cross_period)] if self.has_cross_period else [])

    def to_frame(self) -> pd.DataFrame:
        """One row per poster: ``poster_id, split`` (the artifact logged with every run)."""
        return pd.DataFrame(
            [(pid, name) for name, ids in self.items() for pid in ids],
            columns=["poster_id", "split"],
        )


def _stratified_cut(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (kept, cut) with ``fraction`` of rows cut, stratified on all labels."""
    if fraction <= 0 or len(labels) < 2:
        return np.arange(len(labels)), np.array([], dtype=int)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    kept, cut = next(splitter.split(np.zeros(len(labels)), labels))
    return np.sort(kept), np.sort(cut)


def _ensure_genres_in_train(labels: np.ndarray, train: list, others: list[list]) -> None:
    """Move one poster into train for each genre that train lacks but another split has."""
    for genre in range(labels.shape[1]):
        if labels[train, genre].any():
            continue
        for rows in others:
            having = [r for r in rows if labels[r, genre]]
            if having:
                rows.remove(having[0])
                train.append(having[0])
                break


def make_splits(
    dataset: PosterDataset,
    seed: int = 42,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
    train_years: str | None = None,
    test_years: str | None = None,
) -> Splits:
    """Split the posters of ``train_years`` 70/20/10 (stratified, seeded); posters of a
    different ``test_years`` period form the cross-period test set.

    The same seed and data always give the same ids. When both periods are given and
    differ, posters in both (overlapping ranges) stay in-period only. Raises
    ``DatasetError`` (with the counts) when the period has too few posters for non-empty
    splits, or when a distinct test period has no posters outside the train period.
    """
    train_period, test_period = Period.parse(train_years), Period.parse(test_years)
    years = dataset.years
    in_period = train_period.mask(years)
    distinct = test_period != Period() and test_period != train_period
    cross_period_rows = np.flatnonzero(test_period.mask(years) & ~in_period) if distinct else []

    rows = np.flatnonzero(in_period)
    where = f"{len(rows)} poster(s) in train period {train_period}"
    if len(rows) < MIN_POSTERS:
        raise DatasetError(
            f"{dataset.name}: {where}: too few to split into train/val/test "
            f"(need at least {MIN_POSTERS})"
        )
    if distinct and not len(cross_period_rows):
        n_test = int(test_period.mask(years).sum())
        why = (
            f"all {n_test} of them are in train period {train_period} too: the periods must "
            "not overlap"
            if n_test
            else "the dataset has none"
        )
        raise DatasetError(
            f"{dataset.name}: no cross-period test set: no posters of test period "
            f"{test_period} outside train period {train_period} ({why})"
        )
    labels = dataset.labels[rows]
    try:
        rest, test = _stratified_cut(labels, test_fraction, seed)
        keep, val = _stratified_cut(labels[rest], val_fraction / (1 - test_fraction), seed)
    except ValueError as exc:  # the stratifier's own size checks
        raise DatasetError(f"{dataset.name}: {where}: too few to split ({exc})") from None
    train, val, test = list(rest[keep]), list(rest[val]), list(test)
    _ensure_genres_in_train(labels, train, [val, test])
    for name, split in (("val", val), ("test", test)):
        if not split:
            n_genres = int((labels.sum(axis=0) > 0).sum())
            raise DatasetError(
                f"{dataset.name}: {where}: too few to split: the {name} set is empty once "
                f"train holds a poster of each of the {n_genres} genres present (need at "
                f"least {MIN_POSTERS} posters, and more than one per rare genre)"
            )

    ids = dataset.ids
    return Splits(
        train=ids[rows[np.sort(train)]],
        val=ids[rows[np.sort(val)]],
        test=ids[rows[np.sort(test)]],
        cross_period=ids[np.asarray(cross_period_rows, dtype=int)],
        train_period=train_period,
        test_period=test_period if distinct else train_period,
    )

"""Stratified, reproducible splits and period selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from posterml.data.dataset import DatasetError, PosterDataset
from posterml.data.splits import Period, make_splits
from posterml.data.synthetic import synthetic_dataset
from posterml.genres import GENRES, to_matrix


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(n=300, seed=0)


def test_split_sizes_disjoint_and_complete(data):
    splits = make_splits(data, seed=1)
    sets = [set(ids) for _, ids in splits.items()]
    assert sum(len(s) for s in sets) == len(data) == len(set().union(*sets))
    assert abs(len(splits.train) / len(data) - 0.7) < 0.03
    assert abs(len(splits.test) / len(data) - 0.1) < 0.03
    assert not splits.has_cross_period


def test_stratification_keeps_genre_shares(data):
    splits = make_splits(data, seed=1)
    overall = data.labels.mean(axis=0)
    for name in ("train", "val"):
        share = data.subset(splits.__dict__[name]).labels.mean(axis=0)
        assert np.abs(share - overall).max() < 0.05, name


def test_every_present_genre_reaches_train(data):
    splits = make_splits(data, seed=5)
    present = data.labels.sum(axis=0) > 0
    in_train = data.subset(splits.train).labels.sum(axis=0) > 0
    assert (in_train >= present).all()


def test_same_seed_same_ids_other_seed_other_ids(data):
    a, b, c = make_splits(data, seed=7), make_splits(data, seed=7), make_splits(data, seed=8)
    assert all((x == y).all() for (_, x), (_, y) in zip(a.items(), b.items(), strict=True))
    assert set(a.test) != set(c.test)
    frame = a.to_frame()
    assert set(frame["split"]) == {"train", "val", "test"} and len(frame) == len(data)


def test_periods_make_a_cross_period_test_set(data):
    splits = make_splits(data, seed=1, train_years="1990-2019", test_years="-1979")
    years = dict(zip(data.ids, data.years, strict=True))
    assert all(years[i] >= 1990 for _, ids in splits.items()[:3] for i in ids)
    assert splits.has_cross_period and all(years[i] <= 1979 for i in splits.cross_period)
    assert len(splits.cross_period) == int((data.years <= 1979).sum())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2010-2019", Period(2010, 2019)),
        ("1975", Period(1975, 1975)),
        ("-1979", Period(None, 1979)),
        ("1990-", Period(1990, None)),
        ("all", Period()),
        ("", Period()),
    ],
)
def test_period_parse(text, expected):
    assert Period.parse(text) == expected


@pytest.mark.parametrize("text", ["2019-2010", "70s", "19-20"])
def test_bad_period(text):
    with pytest.raises(ValueError, match="bad period"):
        Period.parse(text)


def tiny(genres: list[list[str]], years: list[int] | None = None) -> PosterDataset:
    """A dataset of len(genres) posters (no image files: splits never read them)."""
    frame = pd.DataFrame(
        {
            "poster_id": [f"p{i}" for i in range(len(genres))],
            "year": years or [2000] * len(genres),
            "genres": genres,
            "image": "unused.jpg",
        }
    )
    return PosterDataset("tiny", Path("."), frame, to_matrix(genres), "hash")


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_posters_is_a_dataset_error_with_counts(n):
    with pytest.raises(
        DatasetError, match=rf"tiny: {n} poster\(s\) in train period all.*at least 3"
    ):
        make_splits(tiny([["Drama"]] * n))


def test_rare_genres_emptying_a_split_is_a_dataset_error():
    # 6 posters of 6 different genres: giving train one of each leaves nothing to validate on.
    data = tiny([[g] for g in GENRES[:6]])
    with pytest.raises(DatasetError, match=r"6 poster\(s\).*val set is empty.*6 genres"):
        make_splits(data)
    assert len(make_splits(tiny([["Drama"]] * 6)).val) > 0  # one genre: the same count splits


def test_an_empty_train_period_is_a_dataset_error(data):
    with pytest.raises(DatasetError, match=r"0 poster\(s\) in train period 2030-2039"):
        make_splits(data, train_years="2030-2039")


def test_an_empty_cross_period_set_is_a_dataset_error(data):
    with pytest.raises(DatasetError, match="test period 1900-1909.*the dataset has none"):
        make_splits(data, train_years="1990-2019", test_years="1900-1909")
    with pytest.raises(DatasetError, match=r"all \d+ of them are in train period all"):
        make_splits(data, test_years="1970-1979")

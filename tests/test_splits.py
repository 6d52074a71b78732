"""Stratified, reproducible splits and period selection."""

from __future__ import annotations

import numpy as np
import pytest

from posterml.data.splits import Period, make_splits
from posterml.data.synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(n=300, seed=0)


def test_split_sizes_disjoint_and_complete(data):
    splits = make_splits(data, seed=1)
    sets = [set(ids) for _, ids in splits.items()]
    assert sum(len(s) for s in sets) == len(data) == len(set().union(*sets))
    assert abs(len(splits.train) / len(data) - 0.7) < 0.03
    assert abs(len(splits.test) / len(data) - 0.1) < 0.03
    assert not splits.has_xperiod


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
    assert splits.has_xperiod and all(years[i] <= 1979 for i in splits.xperiod)
    assert len(splits.xperiod) == int((data.years <= 1979).sum())


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

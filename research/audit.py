"""Does training without the label audit's top suspects change test F1?

    python -m research.audit --data ../shared/posters
    python -m research.audit --smoke   # seconds: synthetic set, 2 folds, one fraction

The quality benchmark's split (train/val/test drawn from 1990-2018, seed 42) and the recipe
with fixed hyperparameters (EfficientNet-Lite0 features, balanced RBF SVMs, C and
gamma_scale as ``posterml audit`` uses them, no search; decision layer fitted on 5-fold
out-of-fold scores over train+val, as ``main`` does). ``posterml.evaluation.audit`` judges
the train+val posters only; the test posters' labels are never audited nor changed. For
each fraction K the K worst-ranked train+val posters are

* **dropped**, and the recipe retrained on the rest;
* **relabelled** with the audit's proposed genres, and the recipe retrained on all;
* and, as a control, as many posters **dropped at random** (seeded, ``--repeats`` draws), so
  a change within the control's spread reads as noise, not as the audit's doing.

Every row is scored on the same test posters: micro, macro and weighted F1. With a few
hundred test posters, differences under ~.01 are within that noise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS, cpu_model
from posterml.evaluation.audit import (
    AuditSettings,
    find_suspects,
    genre_counts,
    out_of_fold_probabilities,
    proposed_genres,
)
from posterml.evaluation.metrics import classification_metrics
from posterml.genres import GENRE_INDEX
from posterml.modeling.cli import experiment_config
from posterml.modeling.fitting import decide_splits, fit_and_decide
from posterml.modeling.inputs import FeatureSets, build_features, load_data

AVERAGES = ("micro", "macro", "weighted")


def retrain(features: FeatureSets, config, settings: AuditSettings, X, Y, years) -> dict:
    """The recipe trained on (X, Y) as its whole train+val, scored on the untouched test."""
    empty = {k: v[:0] for k, v in (("X", X), ("Y", Y), ("years", years))}
    trained = FeatureSets(
        X={"train": X, "val": empty["X"], "test": features.X["test"]},
        Y={"train": Y, "val": empty["Y"], "test": features.Y["test"]},
        ids={},
        years={"train": years, "val": empty["years"], "test": features.years["test"]},
        failures=[],
        featurizer=None,
        seconds=0.0,
    )
    family = settings.family()
    classifier, layer, _, _ = fit_and_decide(family, settings.params(), config, trained)
    test = decide_splits(classifier, layer, trained, ["test"])["test"]
    metrics = classification_metrics(test.Y, test.y_pred, "test")
    return {a: metrics[f"test_f1_{a}"] for a in AVERAGES}


def proposed_matrix(Y: np.ndarray, proba: np.ndarray, suspects, rows: np.ndarray) -> np.ndarray:
    """``Y`` with ``rows`` relabelled as the audit proposes."""
    fixed = Y.copy()
    for i in rows:
        names = proposed_genres(Y[i], suspects.suspect[i], suspects.missing[i], proba[i])
        fixed[i] = 0
        fixed[i, [GENRE_INDEX[g] for g in names]] = 1
    return fixed


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED_POSTERS))
    parser.add_argument("--backbone", default=AuditSettings.backbone)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-years", default="1990-2018")
    parser.add_argument("--max-posters", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5, help="audit and recipe folds (5)")
    parser.add_argument("--fractions", default="1,3,5", help="percent of train+val (1,3,5)")
    parser.add_argument("--repeats", type=int, default=3, help="random-drop draws per fraction")
    args = _smoke.parse_args(
        parser, argv, data="synthetic", max_posters=150, folds=2, fractions="10", repeats=1
    )
    return measure(args)


def measure(args: argparse.Namespace) -> pd.DataFrame:
    """Audit train+val, then retrain per variant and print the table."""
    start = time.perf_counter()
    settings = AuditSettings(backbone=args.backbone, folds=args.folds, seed=args.seed)
    config = experiment_config(
        "resnet_svm",
        data=args.data,
        backbone=args.backbone,
        class_weight="balanced",
        seed=args.seed,
        train_years=args.train_years,
        test_years="all",
        cv_folds=args.folds,
        max_posters=args.max_posters,
    )
    dataset, splits = load_data(config)
    features = build_features(settings.family(), dataset, splits)
    X = np.concatenate([features.X["train"], features.X["val"]])
    Y = np.concatenate([features.Y["train"], features.Y["val"]])
    years = np.concatenate([features.years["train"], features.years["val"]])
    proba = out_of_fold_probabilities(X, Y, years, settings, progress=not args.smoke)
    suspects = find_suspects(Y, proba)
    ranking = suspects.ranking()
    audit_minutes = (time.perf_counter() - start) / 60
    print(
        f"\naudit of train+val: {suspects.flagged.sum()} of {len(Y)} posters flagged "
        f"({suspects.flagged.mean():.0%}); {audit_minutes:.1f} min with features"
    )

    rows = []

    def run(variant: str, fraction: float, n: int, X_, Y_, years_) -> None:
        began = time.perf_counter()
        f1 = retrain(features, config, settings, X_, Y_, years_)
        minutes = (time.perf_counter() - began) / 60
        rows.append({"variant": variant, "K %": fraction, "posters": n, **f1, "min": minutes})

    run("all labels as given", 0.0, 0, X, Y, years)
    rng = np.random.default_rng(args.seed)
    for fraction in [float(f) for f in args.fractions.split(",") if f.strip()]:
        n = max(1, round(len(Y) * fraction / 100))
        top = ranking[:n]
        keep = np.setdiff1d(np.arange(len(Y)), top)
        run("drop top suspects", fraction, n, X[keep], Y[keep], years[keep])
        run("relabel top suspects", fraction, n, X, proposed_matrix(Y, proba, suspects, top), years)
        for _ in range(args.repeats):
            keep = np.sort(rng.choice(len(Y), len(Y) - n, replace=False))
            run("drop at random", fraction, n, X[keep], Y[keep], years[keep])
        counts = genre_counts(Y[top])
        shown = ", ".join(f"{g} {c}" for g, c in list(counts.items())[:8])
        print(f"top {fraction:g}% ({n} posters), their given genres: {shown}")

    table = pd.DataFrame(rows)
    print(
        f"\nTest F1 on {args.data} (seed {args.seed}; train/val/test {args.train_years}, "
        f"{len(features.Y['test'])} test posters; C {settings.C}, gamma_scale "
        f"{settings.gamma_scale}, {args.folds} folds; {cpu_model()}):"
    )
    print(markdown(table))
    spread = table[table["variant"] == "drop at random"].groupby("K %")[list(AVERAGES)]
    if len(spread):
        print("\nrandom drops, min-max per fraction:")
        print((spread.max() - spread.min()).round(3).to_string())
    print(f"\ntotal {(time.perf_counter() - start) / 60:.1f} min")
    return table


def markdown(table: pd.DataFrame) -> str:
    """The table as a Markdown table, F1 with 3 decimals and minutes with 1, for the README."""

    def cell(value: object, column: str) -> str:
        if column == "min":
            return f"{value:.1f}"
        if column in AVERAGES:
            return f"{value:.3f}"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for record in table.to_dict("records"):
        lines.append("| " + " | ".join(cell(record[c], c) for c in table.columns) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

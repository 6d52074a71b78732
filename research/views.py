"""Which views of a poster should the recipe read: the picture, its words, its detail?

    python -m research.views --data ../shared/posters [--views ocr,detail]
    python -m research.views --smoke   # seconds: synthetic set, few posters

Every view scores the 19 genres on its own, on the recipe's split (seed 42, 70/20/10 of every
decade; ``--train-years``/``--test-years`` give the quality benchmark's split instead, and
``--judge cross_period`` judges on the other period's posters, e.g. the vintage ones):

* ``image``: the recipe's model, Lite0 features of the whole poster + balanced RBF SVMs
  (C 1, gamma_scale 1);
* ``ocr``: the words Tesseract reads (``posterml.features.ocr``), TF-IDF n-grams + logistic
  regression (``posterml.classifiers.text``);
* ``detail``: Lite0 features of three square crops (top, middle, bottom: the poster at the
  backbone's full resolution instead of squashed), averaged (``posterml.features.crops``),
  + the same SVMs.

Each view's out-of-fold scores over train+val feed the per-genre late fusion
(``posterml.classifiers.fusion``), then the recipe's decision layer, with the shipped mechanism of
``posterml.modeling.fitting``: the detail is fused with the whole poster first (the picture),
the words with the picture after. The tables:
per-genre average precision on test for every view alone and fused (kept or not, every
genre); then test F1 (micro, macro, weighted), genres asserted at precision >= .30, and the
fused model's difference from the picture alone with a 95% paired bootstrap interval. Runs
are logged to the experiment ``benchmark-views`` with a figure of per-genre AP.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from benchmarks import _smoke
from benchmarks._common import RECIPE_SVM, SHARED_POSTERS, cpu_kind
from posterml.genres import GENRES
from posterml.modeling.cli import experiment_config
from posterml.modeling.families import get_family
from posterml.modeling.fitting import (
    decision_layer,
    fit_classifier,
    fit_detail_view,
    fit_text_view,
    out_of_fold_scores,
    text_classifier,
    text_scores,
)
from posterml.modeling.inputs import build_features, load_data
from posterml.modeling.settings import views_name
from research import representations
from research.representations import Result, paired_difference

EXPERIMENT = "benchmark-views"
VIEWS = ("ocr", "detail")  # the picture always runs
SVM = RECIPE_SVM
MIN_TEST_POSITIVES = 10  # genres judged for asserted precision
PRECISION_BAR = 0.30


def view_costs(paths: list[str], featurizer, reader) -> dict[str, float]:
    """CPU ms per poster of each view's inputs on decoded posters, caches bypassed: the
    whole poster's features, the three crops' features, and OCR (the engine's own CPU is a
    child process's, counted too). What a served request or a batch pays per poster on top
    of decoding."""
    from posterml.data.images import load_image
    from posterml.features.crops import CropFeatures

    images = [load_image(p, min_size=reader.min_size) for p in paths]
    featurizer.transform_images(images[:2])  # trace the graph before timing

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    costs = {}
    for name, work in (
        ("image", lambda: featurizer.transform_images(images)),
        ("detail", lambda: CropFeatures(featurizer).transform_images(images)),
        ("ocr", lambda: reader.read_images([reader.page(im) for im in images])),
    ):
        start = cpu()
        work()
        costs[name] = 1000 * (cpu() - start) / len(images)
    return costs


def average_precision(Y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-genre AP on ``Y`` (NaN where a genre has no positive)."""
    return np.array(
        [
            average_precision_score(Y[:, j], scores[:, j]) if Y[:, j].any() else np.nan
            for j in range(Y.shape[1])
        ]
    )


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    if unknown := set(views) - set(VIEWS):
        raise SystemExit(f"--views: unknown {sorted(unknown)}; choose from {VIEWS}")
    config = experiment_config(
        "resnet_svm",
        data=str(args.data),
        backbone="efficientnet_lite0",
        class_weight="balanced",
        seed=args.seed,
        max_posters=args.max_posters,
        train_years=args.train_years,
        test_years=args.test_years,
        views=views_name({"image", *views}),
    )
    dataset, splits = load_data(config)
    family = get_family("resnet_svm", config.options)
    features = build_features(family, dataset, splits, config.views)
    dev, test = ("train", "val"), args.judge

    def joined(part: dict) -> np.ndarray:
        return np.concatenate([part[s] for s in dev])

    Y_dev, years_dev, Y_test = joined(features.Y), joined(features.years), features.Y[test]
    if not len(Y_test):
        raise SystemExit(f"--judge {test}: no posters in that split (see --test-years)")
    print(f"{len(Y_dev)} dev posters (train+val), {len(Y_test)} on {test}", flush=True)
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # view -> (out-of-fold dev, test)
    cpu: dict[str, float] = {}

    start = time.process_time()
    X_dev = joined(features.X)
    image_dev = out_of_fold_scores(family, SVM, config, X_dev, Y_dev, progress=True)
    image_model = fit_classifier(family, SVM, config.seed, X_dev, Y_dev)
    scores["image"] = (image_dev, image_model.predict_scores(features.X[test]))
    cpu["image"] = time.process_time() - start

    fused: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pictures = {"image": (image_dev, scores["image"][1])}  # what the words are fused with
    if "detail" in views:
        start = time.process_time()
        crop_dev, crop_test = joined(features.crops), features.crops[test]
        detail_dev = out_of_fold_scores(family, SVM, config, crop_dev, Y_dev, progress=True)
        detail_model = fit_classifier(family, SVM, config.seed, crop_dev, Y_dev)
        scores["detail"] = (detail_dev, detail_model.predict_scores(crop_test))
        # The shipped mechanism: what a run with views=image+detail fits.
        view, picture_dev = fit_detail_view(detail_model, image_dev, detail_dev, Y_dev)
        fused["image+detail"] = (picture_dev, view.fused_scores(scores["image"][1], crop_test))
        pictures["image+detail"] = fused["image+detail"]
        cpu["detail"] = time.process_time() - start
    if "ocr" in views:
        start = time.process_time()
        texts_dev, texts_test = joined(features.texts), features.texts[test]
        read = np.mean([bool(t) for t in texts_dev])
        print(f"OCR read something on {read:.0%} of dev posters", flush=True)
        text_dev = text_scores(config, texts_dev, Y_dev, cross_fitted=True)
        text_test = text_classifier().fit(texts_dev, Y_dev).predict_scores(texts_test)
        scores["ocr"] = (text_dev, text_test)
        for picture, (picture_dev, picture_test) in pictures.items():
            # The shipped mechanism: what a run with views=image+ocr(+detail) fits.
            view, fused_dev = fit_text_view(
                config, texts_dev, Y_dev, years_dev, picture_dev, text_dev, features.reader
            )
            name = views_name({*picture.split("+"), "ocr"})
            fused[name] = (fused_dev, view.fused_scores(picture_test, texts_test))
        cpu["ocr"] = time.process_time() - start

    ap = pd.DataFrame(
        {name: average_precision(Y_test, s[1]) for name, s in {**scores, **fused}.items()},
        index=list(GENRES),
    )
    ap.insert(0, "test_posters", Y_test.sum(axis=0))
    ap.insert(1, "train_share", features.Y["train"].mean(axis=0))

    results = {}
    for name, (s_dev, s_test) in {"image": scores["image"], **fused}.items():
        layer = decision_layer(config).fit(s_dev, Y_dev, years_dev)
        _, genres, maybe = layer.predict_tiers(s_test)
        results[name] = Result(name, Y_test, genres, maybe, sum(cpu.values()))
    rows = []
    for name, result in results.items():
        row = result.row()
        row.pop("verdicts")
        judged = Y_test.sum(axis=0) >= MIN_TEST_POSITIVES
        asserted = result.genres.sum(axis=0)
        hits = (result.genres & Y_test.astype(bool)).sum(axis=0)
        precise = judged & (asserted > 0) & (hits >= PRECISION_BAR * np.maximum(asserted, 1))
        row["precise_genres"] = f"{int(precise.sum())}/{int(judged.sum())}"
        if name != "image":
            for average in ("macro", "weighted"):
                diff, low, high = paired_difference(result, results["image"], average, args.seed)
                row[f"{average}_vs_image"] = f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
        rows.append(row)
    table = pd.DataFrame(rows).drop(columns=["note", "cpu_min"])
    if args.cost_posters:
        from posterml.features.ocr import OcrReader

        by_id = dataset.frame.set_index("poster_id")["image"]
        sample = [by_id[i] for i in features.ids[test][: args.cost_posters]]
        costs = view_costs(sample, features.featurizer, features.reader or OcrReader())
        print(
            f"\nCPU ms per poster on {len(sample)} {test} posters, caches bypassed "
            f"({cpu_kind()}): " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()),
            flush=True,
        )
    print(
        "\nCPU seconds per view (fits and features, all threads): "
        + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
    )
    return ap, table


def figure(ap: pd.DataFrame):
    """Per-genre test AP of every view and fusion, genres from most to least common."""
    from matplotlib.figure import Figure

    shown = ap.drop(columns=["test_posters", "train_share"]).loc[
        ap["train_share"].sort_values(ascending=False).index
    ]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / shown.shape[1]
    for k, column in enumerate(shown.columns):
        ax.bar(np.arange(len(shown)) + k * width, shown[column], width, label=column)
    ax.set_xticks(np.arange(len(shown)) + 0.4 - width / 2, shown.index, rotation=60, ha="right")
    ax.set_ylabel("test average precision")
    ax.legend()
    return fig


def log_to_mlflow(ap: pd.DataFrame, table: pd.DataFrame, args: argparse.Namespace) -> None:
    import mlflow

    from posterml.tracking import configure_tracking

    if not args.smoke:  # a smoke run's throwaway store is already active
        configure_tracking()
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="views"), tempfile.TemporaryDirectory() as folder:
        mlflow.log_params({k: v for k, v in vars(args).items() if k != "smoke"})
        mlflow.set_tag("cpu_kind", cpu_kind())
        for _, row in table.iterrows():
            key = row["variant"].replace("+", "_")
            for column in ("test_f1_micro", "test_f1_macro", "test_f1_weighted"):
                mlflow.log_metric(f"{key}_{column}", float(row[column]))
        for column in ap.columns[2:]:
            mlflow.log_metric(f"{column.replace('+', '_')}_test_ap_macro", ap[column].mean())
        ap.to_csv(Path(folder) / "views_ap.csv")
        table.to_csv(Path(folder) / "views_f1.csv", index=False)
        mlflow.log_artifacts(folder)
        mlflow.log_figure(figure(ap), "views_ap.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_POSTERS))
    parser.add_argument("--views", default=",".join(VIEWS), help=f"of {VIEWS}")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-years", default="all")
    parser.add_argument("--test-years", default="all")
    parser.add_argument(
        "--judge",
        default="test",
        choices=("test", "cross_period"),
        help="the held-out split the tables judge: test, or cross_period (--test-years' posters)",
    )
    parser.add_argument("--max-posters", type=int, default=0, help="0: all")
    parser.add_argument(
        "--cost-posters", type=int, default=100, help="posters timed per view (0: no timing)"
    )
    return _smoke.parse_args(parser, argv, data="synthetic", max_posters=150, cost_posters=5)


def main(argv: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    args = parse_args(argv)
    if args.smoke:
        representations.BOOTSTRAP = 20
    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores", flush=True)
    ap, table = run(args)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            f"\nPer-genre {args.judge} average precision, each view alone and fused with the image:"
        )
        print(ap.to_string(float_format="{:.3f}".format))
        means = ap.drop(columns=["test_posters", "train_share"])
        rare = ap["train_share"] < 0.05
        print("\nmean AP: " + ", ".join(f"{c} {means[c].mean():.3f}" for c in means))
        print(
            "mean AP, genres on < 5% of train posters: "
            + ", ".join(f"{c} {means.loc[rare, c].mean():.3f}" for c in means)
        )
        print(f"\nDecisions on {args.judge} (the recipe's decision layer on each model's scores):")
        print(table.fillna("").to_string(index=False, float_format="{:.3f}".format))
    if args.smoke:  # artifacts beside a throwaway store, never ./mlruns
        with _smoke.scratch_store(EXPERIMENT):
            log_to_mlflow(ap, table, args)
    else:
        log_to_mlflow(ap, table, args)
    return ap, table


if __name__ == "__main__":
    main()

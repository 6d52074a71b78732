"""Does knowing a period's genre rates help, and can they be estimated from unlabelled posters?

    python -m research.priors --run RUN_ID --data ../shared/posters
    python -m research.priors --smoke   # seconds: the smoke model on the synthetic set

For a logged run (a ``research.quality`` run: trained on 1990-2018, cross-period set before
1980), scores its held-out posters with the run's own model and decision layer, three ways:
plain; with each split's genre rates estimated from the unlabelled posters by Saerens et
al.'s EM (``estimate_priors_em``, what a dealer with a folder of unlabelled scans could do);
and with the true rates (an oracle: the most any prior-shift correction can give). Prints F1
and genres per poster for each, and EM's estimates of a few rates beside the truth.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.evaluation.decision import estimate_priors_em, shift_priors
from posterml.evaluation.metrics import AVERAGES
from posterml.genres import GENRES, to_matrix
from posterml.serving.pyfunc import load_pipeline

REPO = Path(__file__).resolve().parents[1]
SHOWN = ("Drama", "Comedy", "Documentary", "Horror", "Western")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a parent run id with a logged model (required)")
    parser.add_argument("--data", type=Path, default=SHARED_POSTERS)
    args = _smoke.parse_args(parser, argv)
    if args.smoke:  # the smoke model's run (split like research.quality's) and its posters
        args.run = _smoke.smoke_model().run_id
        args.data = _smoke.synthetic_root()
    elif not args.run:
        parser.error("the following arguments are required: --run")
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    run = mlflow.get_run(args.run)
    pipeline = load_pipeline(run.data.tags["model_uri"])
    layer = pipeline.layer
    split_ids = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=args.run, artifact_path="data/split_ids.csv"),
        dtype=str,
    )
    labels = pd.read_csv(args.data / "labels.csv", dtype={"poster_id": str}).set_index("poster_id")
    prior = np.asarray(layer.prevalence_)
    for split in ("test", "cross_period"):
        ids = split_ids.loc[split_ids["split"] == split, "poster_id"]
        if ids.empty:
            continue
        rows = labels.loc[ids]
        result = pipeline.featurizer.transform_paths([str(args.data / p) for p in rows["image"]])
        y = to_matrix(rows["genres"][result.ok].map(lambda g: g.split("|")[:5]).tolist())
        proba = layer.predict_proba(pipeline.classifier.predict_scores(result.features))
        cuts = layer.thresholds_for(len(proba))
        estimated = estimate_priors_em(proba, prior)
        true = np.clip(y.mean(axis=0), 1e-3, 1 - 1e-3)
        print(f"\n{split}: {len(y)} posters ({run.info.run_name})")
        for name, shifted in (
            ("plain", proba),
            ("EM-estimated rates", shift_priors(proba, prior, estimated)),
            ("true rates (oracle)", shift_priors(proba, prior, true)),
        ):
            pred = layer.decide(shifted, cuts)
            f1 = "  ".join(
                f"{a} {f1_score(y, pred, average=a, zero_division=0):.3f}" for a in AVERAGES
            )
            print(f"  {name:22s} {f1}  genres/poster {pred.sum(1).mean():.2f}")
        print(
            "  rates, EM vs true: "
            + ", ".join(
                f"{g} {estimated[GENRES.index(g)]:.2f} vs {y.mean(0)[GENRES.index(g)]:.2f}"
                for g in SHOWN
            )
        )


if __name__ == "__main__":
    main()

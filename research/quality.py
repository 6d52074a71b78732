"""Quality: every family on real posters, one table next to the baseline.

    python -m research.quality --data ../shared/posters --backbone efficientnet_lite0
    python -m research.quality --smoke   # seconds: synthetic set, one trial, one epoch

One fixed-seed split: train/val/test drawn from 1990-2018 (in-period test), and every
poster before 1980 as the cross-period test set (standing in for the study's 2010s -> 1970s).
Every model decides through the decision layer (calibrated out-of-fold probabilities,
rate-capped thresholds; ``posterml.evaluation.decision``) unless it says "0.5 cut" (the
study's rule: raw scores cut at 0.5). The SVM runs with class_weight none and balanced; the
MLP without positive weighting and with weighting searched. ``recipe, all years`` is the
shipped recipe (``main``) on a split drawn from every decade, so its test posters span
1902-2018 and its year-aware decisions (decade genre rates) can be measured.

Besides F1 the table shows how much each model says: genres per poster against the truth,
the worst genre's predicted/true ratio and maybe genres per poster. Then, per run, the two
tiers on test (``research._tier_report``): each genre's asserted precision and the share of its
posters found in genres or maybe, against the tiers' targets. Trials and epochs are capped
to fit 2 CPU cores; the budget is printed with the table. Runs land in $MLFLOW_TRACKING_URI (default
sqlite:///mlflow.db) under the experiment ``benchmark-quality``.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import pandas as pd

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.modeling.cli import experiment_config
from posterml.modeling.compare import comparison_table
from posterml.modeling.run import run_experiment
from posterml.modeling.settings import RECOMMENDED, ExperimentConfig
from research._tier_report import print_tiers

EXPERIMENT = "benchmark-quality"
SMOKE_POSTERS = 150
# Every variant's config is built (a stale knob fails), but a smoke run fits only two: each
# run takes ~8 s even at one trial, and the families have their own tests.
SMOKE_VARIANTS = "pca_classic,resnet_svm (balanced)"
STUDY_CLAIMS = "study (ResNet50, 2010s): SVM 0.51, MLP 0.57, balanced SVM 0.74; 1970s 0.37-0.40"


def variants(args: argparse.Namespace) -> dict[str, ExperimentConfig]:
    shared = dict(
        data=args.data,
        seed=args.seed,
        train_years=args.train_years,
        test_years=args.test_years,
        storage=args.storage,
        experiment=EXPERIMENT,
        max_posters=args.max_posters,
        cv_folds=args.cv_folds,
    )

    def config(family: str, **knobs) -> ExperimentConfig:
        if family != "pca_classic" and family != "scratch_cnn":
            knobs.setdefault("backbone", args.backbone)
        return experiment_config(family, **{**shared, **knobs})

    svm = partial(config, "resnet_svm", n_trials=args.svm_trials)
    mlp = partial(config, "resnet_mlp", n_trials=args.mlp_trials, epochs=args.mlp_epochs)
    recipe = {k: v for k, v in RECOMMENDED.items() if k != "family"}
    return {
        "pca_classic": config("pca_classic", n_trials=args.pca_trials),
        # Keras families that train for minutes per fit skip the out-of-fold refits: their
        # decision layer learns from validation scores (cv_folds 0).
        "scratch_cnn": config(
            "scratch_cnn", n_trials=args.cnn_trials, epochs=args.cnn_epochs, cv_folds=0
        ),
        "resnet_svm (unbalanced)": svm(class_weight="none"),
        "resnet_svm (balanced)": svm(class_weight="balanced"),
        # The study's decision rule: a plain 0.5 cut, no fallback genre.
        "resnet_svm (balanced, 0.5 cut)": svm(
            class_weight="balanced", tune_thresholds=False, min_one_genre=False
        ),
        "resnet_mlp (unweighted)": mlp(positive_weighting="none"),
        "resnet_mlp (weighting searched)": mlp(positive_weighting="search"),
        "finetune (top block)": config(
            "finetune", n_trials=args.finetune_trials, epochs=args.finetune_epochs, cv_folds=0
        ),
        "ensemble (svm + mlp)": config(
            "ensemble", n_trials=args.ensemble_trials, epochs=args.mlp_epochs
        ),
        "recipe, all years": config(
            "resnet_svm",
            **{**recipe, "n_trials": args.svm_trials},
            train_years="all",
            test_years="all",
        ),
    }


def print_decades(run_ids: dict[str, str]) -> None:
    """F1 micro per decade of release for each run, the baseline's beside it."""
    import mlflow

    client = mlflow.MlflowClient()
    rows = []
    for name, run_id in run_ids.items():
        metrics = client.get_run(run_id).data.metrics
        for key, value in metrics.items():
            for split in ("test", "cross_period"):
                prefix = f"{split}_f1_micro_"
                if key.startswith(prefix):
                    decade = key[len(prefix) :]
                    base = metrics.get(f"{split}_baseline_f1_micro_{decade}")
                    n = int(metrics.get(f"{split}_n_{decade}", 0))
                    rows.append((name, decade, f"{value:.3f} / {base:.3f} (n={n})"))
    if rows:
        table = pd.DataFrame(rows, columns=["model", "decade", "f1"]).pivot(
            index="model", columns="decade", values="f1"
        )
        print("\nF1 micro by decade of release, model / baseline (test and cross-period posters):")
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            print(table.fillna("").to_string())


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED_POSTERS))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-years", default="1990-2018")
    parser.add_argument("--test-years", default="-1979")
    parser.add_argument("--storage", default="", help="Optuna storage (default: beside mlflow.db)")
    parser.add_argument("--max-posters", type=int, default=0)
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--pca-trials", type=int, default=10)
    parser.add_argument("--cnn-trials", type=int, default=2)
    parser.add_argument("--cnn-epochs", type=int, default=10)
    parser.add_argument("--svm-trials", type=int, default=10)
    parser.add_argument("--mlp-trials", type=int, default=5)
    parser.add_argument("--mlp-epochs", type=int, default=100)
    parser.add_argument("--ensemble-trials", type=int, default=5)
    parser.add_argument("--finetune-trials", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--only", default="", help="comma-separated variant names to run")
    args = _smoke.parse_args(
        parser,
        argv,
        data="synthetic",
        max_posters=SMOKE_POSTERS,
        cv_folds=2,
        pca_trials=1,
        cnn_trials=1,
        cnn_epochs=1,
        svm_trials=1,
        mlp_trials=1,
        mlp_epochs=2,
        ensemble_trials=1,
        finetune_trials=1,
        finetune_epochs=1,
        only=SMOKE_VARIANTS,
    )
    if not args.smoke:
        return compare(args)
    with _smoke.scratch_store(EXPERIMENT):  # synthetic runs never land in the user's store
        return compare(args)


def compare(args: argparse.Namespace) -> pd.DataFrame:
    """Run the variants ``args`` selects and print their table."""
    run_ids, seconds = {}, {}
    configs = variants(args)
    for name, config in configs.items():
        if args.only and not any(o.strip() in name for o in args.only.split(",")):
            continue
        start = time.perf_counter()
        run_ids[name] = run_experiment(config)
        seconds[name] = time.perf_counter() - start
    if args.smoke:
        _smoke.say(f"ran {len(run_ids)} of {len(configs)} variants: {', '.join(run_ids)}")
    table = comparison_table(run_ids)
    table.insert(2, "minutes", [round(seconds.get(m, 0) / 60, 1) for m in table["model"]])
    shown = table.drop(columns=["run_id"])
    print(
        f"\nQuality on {args.data} (seed {args.seed}; train/val/test {args.train_years}, "
        f"cross_period {args.test_years}; backbone {args.backbone}; {os.cpu_count()} cores)"
    )
    print(
        f"budget: pca {args.pca_trials} trials, cnn {args.cnn_trials} trials x "
        f"{args.cnn_epochs} epochs, svm {args.svm_trials} trials, mlp {args.mlp_trials} "
        f"trials x <= {args.mlp_epochs} epochs (early stopping), ensemble "
        f"{args.ensemble_trials} trials, finetune {args.finetune_trials} trials x <= "
        f"{args.finetune_epochs} "
        f"epochs (no out-of-fold refits); out-of-fold folds {args.cv_folds}"
    )
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(STUDY_CLAIMS)
    print_decades(run_ids)
    print_tiers(run_ids)
    return table


if __name__ == "__main__":
    main()

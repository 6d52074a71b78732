"""Run the four families on one dataset and split, then tabulate them side by side.

Each family gets its own parent run (tagged ``family``) nested under one ``compare`` run,
which logs the table as an artifact; the rows line up because every family logs the same
metric names.
"""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd

from posterml.runner import ROLE_TAG, ExperimentConfig, run_experiment
from posterml.tracking import configure_tracking, log_new_params

COMPARED_FAMILIES = ("pca_classic", "scratch_cnn", "resnet_svm", "resnet_mlp")
TABLE_METRICS = [
    f"{split}_f1_{avg}"
    for split in ("val", "test", "xperiod")
    for avg in ("micro", "macro", "weighted", "samples")
]
# How much each model says: genres per poster against the truth, and its worst genre's
# predicted/true ratio (an honest model stays near 1; the old served model was at ~40).
DECISION_METRICS = [
    "test_genres_per_poster",
    "test_true_genres_per_poster",
    "test_max_overprediction",
    "xperiod_genres_per_poster",
    "xperiod_max_overprediction",
]


def comparison_table(run_ids: dict[str, str]) -> pd.DataFrame:
    """One row per family (plus the 2-most-frequent-genres baseline), F1 averages as columns."""
    client = mlflow.MlflowClient()
    rows = []
    baseline = None
    for family, run_id in run_ids.items():
        run = client.get_run(run_id)
        metrics = run.data.metrics
        row = {"model": family, "balanced": run.data.tags.get("balanced"), "run_id": run_id}
        row.update({k: metrics.get(k) for k in TABLE_METRICS + DECISION_METRICS})
        row["most_overpredicted_test"] = run.data.tags.get("most_overpredicted_test")
        row["beats_baseline"] = run.data.tags.get("beats_baseline")
        rows.append(row)
        if baseline is None:
            baseline = {"model": "baseline: 2 most frequent genres", "balanced": "", "run_id": ""}
            baseline.update(
                {k: metrics.get(k.replace("_f1_", "_baseline_f1_")) for k in TABLE_METRICS}
            )
    if baseline:
        rows.append(baseline)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all")


def run_comparison(
    config: ExperimentConfig, families: tuple[str, ...] = COMPARED_FAMILIES
) -> pd.DataFrame:
    """Run each family as a nested parent run; log and return the comparison table."""
    configure_tracking()
    with mlflow.start_run(run_name="compare") as run:
        mlflow.set_tag(ROLE_TAG, "compare")
        log_new_params({k: v for k, v in config.params().items() if k != "family"})
        run_ids = {}
        for family in families:
            family_config = dataclasses.replace(config, family=family)
            run_ids[family] = run_experiment(family_config, nested=True)
        table = comparison_table(run_ids)
        mlflow.log_table(table, "comparison.json")
        text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        mlflow.log_text(text, "comparison.txt")
        print(f"\nComparison (parent run {run.info.run_id}):\n{text}")
    return table

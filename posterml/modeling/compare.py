"""Run several families on one dataset and split, then tabulate them side by side.

Each family gets its own parent run nested under one ``compare`` run. The compare run logs
the table three ways: as metrics (``resnet_svm_test_f1_weighted``...), so MLflow's compare
view lines families up without opening artifacts; as its description; and as a table.
"""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd

from posterml.evaluation.metrics import AVERAGES
from posterml.modeling.cli import parse_config_with
from posterml.modeling.families import family_class
from posterml.modeling.run import run_experiment
from posterml.modeling.settings import CompareOptions, ExperimentConfig
from posterml.names import BALANCED_TAG, BEATS_BASELINE_TAG, COMPARE_ROLE, ROLE_TAG
from posterml.tracking import configure_tracking, log_new_params

COMPARED_FAMILIES = ("pca_classic", "scratch_cnn", "resnet_svm", "resnet_mlp")
TABLE_METRICS = [
    f"{split}_f1_{avg}" for split in ("val", "test", "cross_period") for avg in AVERAGES
]
# How much each model says: genres per poster against the truth, and its worst genre's
# predicted/true ratio (an honest model stays near 1; a rare genre said of every poster is
# far above).
DECISION_METRICS = [
    "test_genres_per_poster",
    "test_true_genres_per_poster",
    "test_max_overprediction",
    "test_maybe_per_poster",
    "cross_period_genres_per_poster",
    "cross_period_max_overprediction",
]
BASELINE_ROW = "baseline: 2 most frequent genres"


def family_config(config: ExperimentConfig, family: str) -> ExperimentConfig:
    """One family's config: the shared knobs of ``config`` and those of its compare options
    that apply to the family (``backbone`` reaches the SVM and the MLP, not the CNN)."""
    options_class = family_class(family).options_class
    names = {f.name for f in dataclasses.fields(options_class)}
    knobs = {k: v for k, v in dataclasses.asdict(config.options).items() if k in names}
    return dataclasses.replace(config, family=family, options=options_class(**knobs))


def comparison_table(run_ids: dict[str, str]) -> pd.DataFrame:
    """One row per family (plus the 2-most-frequent-genres baseline), F1 averages as columns."""
    client = mlflow.MlflowClient()
    rows = []
    baseline = None
    for family, run_id in run_ids.items():
        run = client.get_run(run_id)
        metrics = run.data.metrics
        row = {"model": family, "balanced": run.data.tags.get(BALANCED_TAG), "run_id": run_id}
        row.update({k: metrics.get(k) for k in TABLE_METRICS + DECISION_METRICS})
        row["most_overpredicted_test"] = run.data.tags.get("most_overpredicted_test")
        row[BEATS_BASELINE_TAG] = run.data.tags.get(BEATS_BASELINE_TAG)
        rows.append(row)
        if baseline is None:
            baseline = {"model": BASELINE_ROW, "balanced": "", "run_id": ""}
            baseline.update(
                {k: metrics.get(k.replace("_f1_", "_baseline_f1_")) for k in TABLE_METRICS}
            )
    if baseline:
        rows.append(baseline)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all")


def table_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The table as metrics named ``<model>_<metric>`` (``baseline_test_f1_micro``)."""
    metrics = {}
    for _, row in table.iterrows():
        prefix = "baseline" if row["model"] == BASELINE_ROW else row["model"]
        for column in TABLE_METRICS + DECISION_METRICS:
            value = row.get(column)
            if value is not None and value == value:
                metrics[f"{prefix}_{column}"] = float(value)
    return metrics


def table_markdown(table: pd.DataFrame) -> str:
    """The headline columns as a markdown table, for the run's description."""
    columns = ["model"] + [c for c in TABLE_METRICS if c in table.columns and "_macro" not in c]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = [str(row["model"])] + [
            f"{row[c]:.3f}" if row[c] == row[c] and row[c] is not None else "" for c in columns[1:]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_comparison(
    config: ExperimentConfig, families: tuple[str, ...] = COMPARED_FAMILIES
) -> pd.DataFrame:
    """Run each family as a nested parent run; log and return the comparison table."""
    configure_tracking()
    with mlflow.start_run() as run:
        mlflow.set_tag("mlflow.runName", f"compare · {config.data} · {run.info.run_id[:8]}")
        mlflow.set_tag(ROLE_TAG, COMPARE_ROLE)
        log_new_params(config.params())
        run_ids = {}
        for family in families:
            run_ids[family] = run_experiment(family_config(config, family), nested=True)
        table = comparison_table(run_ids)
        mlflow.log_metrics(table_metrics(table))
        mlflow.log_table(table, "comparison.json")
        text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        mlflow.log_text(text, "comparison.txt")
        mlflow.set_tag(
            "mlflow.note.content",
            f"**compare** on `{config.data}`: {len(families)} families, "
            f"{config.n_trials} trials each.\n\n{table_markdown(table)}",
        )
        print(f"\nComparison (parent run {run.info.run_id}):\n{text}")
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.run compare``: an unusable dataset or backbone is one line."""
    import sys

    from posterml.data.dataset import DatasetError
    from posterml.features.backbone_registry import BackboneUnavailableError

    try:
        run_comparison(parse_config_with("compare", CompareOptions, argv))
    except (BackboneUnavailableError, DatasetError) as exc:
        print(f"posterml compare: {exc}", file=sys.stderr)
        return 2
    return 0

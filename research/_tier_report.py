"""The two tiers of answer on an experiment's test split, against the targets below.

``python -m research.quality`` prints this for every run it made: for each genre with at
least ``MIN_POSITIVES`` test posters, how often an asserted genre is right ("never": not
asserted, which counts as precise) and the share of its posters found in ``genres`` or ``maybe``;
then maybe per poster and the macro and weighted F1 of ``genres``. Read from each run's
``reports/test_tiers.json`` and test metrics.
"""

from __future__ import annotations

import pandas as pd

MIN_POSITIVES = 10
# What the two tiers aim for on ../shared/posters with the recipe on its test split.
MIN_PRECISION = 0.30
MIN_FOUND = 0.5
MAX_MAYBE_PER_POSTER = 1.0
MIN_MACRO_F1 = 0.38
MIN_WEIGHTED_F1 = 0.514


def tier_table(run_id: str) -> pd.DataFrame:
    """Per genre with enough test posters: posters, asserted count and precision, maybe
    count, and the share found in either tier."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    return shown(client.load_table(experiment, "reports/test_tiers.json", run_ids=[run_id]))


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """A ``tier_report_frame`` cut to the genres the targets speak of, in the printed
    columns (precision NaN: never asserted)."""
    table = table[table["support"] >= MIN_POSITIVES].copy()
    table["precision"] = table["genres_precision"].where(table["genres_named"] > 0)
    return table.rename(
        columns={"support": "posters", "genres_named": "asserted", "maybe_named": "maybe"}
    )[["genre", "posters", "asserted", "precision", "maybe", "found"]]


def verdicts(table: pd.DataFrame, metrics: dict[str, float]) -> list[str]:
    """One line per target: met, or by how much it is missed."""

    def short(column: str, bar: float) -> str:
        missed = table[table[column] < bar]  # NaN (never asserted) is not short
        named = ", ".join(f"{r.genre} {r[column]:.3f}" for _, r in missed.iterrows())
        return "met" if missed.empty else f"NOT met for {len(missed)}: {named}"

    maybe = metrics.get("test_maybe_per_poster", 0.0)
    macro, weighted = metrics["test_f1_macro"], metrics["test_f1_weighted"]

    def against(value: float, bar: float, at_least: bool = True) -> str:
        ok = value >= bar if at_least else value <= bar
        return "met" if ok else f"NOT met by {abs(value - bar):.3f}"

    return [
        f"asserted precision >= {MIN_PRECISION:.2f}: {short('precision', MIN_PRECISION)}",
        f"found in genres or maybe >= {MIN_FOUND:.2f}: {short('found', MIN_FOUND)}",
        f"maybe per poster {maybe:.2f} <= {MAX_MAYBE_PER_POSTER:.1f}: "
        + against(maybe, MAX_MAYBE_PER_POSTER, at_least=False),
        f"macro F1 of genres {macro:.3f} >= {MIN_MACRO_F1:.2f}: {against(macro, MIN_MACRO_F1)}",
        f"weighted F1 of genres {weighted:.3f} >= {MIN_WEIGHTED_F1:.3f}: "
        + against(weighted, MIN_WEIGHTED_F1),
    ]


def print_tiers(run_ids: dict[str, str]) -> None:
    """The per-tier figures of each run (runs logged before the tiers are skipped)."""
    import mlflow

    client = mlflow.MlflowClient()
    for name, run_id in run_ids.items():
        try:
            table = tier_table(run_id)
        except Exception:  # no tiers report: a run from before the tiers
            continue
        metrics = client.get_run(run_id).data.metrics
        print(f"\nTwo tiers on test, {name} (genres with >= {MIN_POSITIVES} test posters):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="never"))
        for line in verdicts(table, metrics):
            print(f"  {line}")

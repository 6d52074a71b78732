"""``python -m research.vintage_curve``: the smoke run end to end (test_benchmarks.py runs
its ``--help`` and leaves its ``--smoke`` to this file), and its helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from research.vintage_curve import parse_steps, priority_gain

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    return subprocess.run(
        [sys.executable, "-m", "research.vintage_curve", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_smoke_run_prints_the_table_writes_the_figure_and_logs_a_run(tmp_path):
    out = tmp_path / "out"
    done = _run(tmp_path, "--smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    text = done.stdout
    assert "vintage pooled" in text and "modern separate" in text
    assert "baseline (Drama + Comedy)" in text and "priority minus random" in text
    assert (out / "vintage_curve.png").stat().st_size > 10_000
    assert (out / "vintage_curve.csv").is_file()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("benchmark-vintage-curve")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["dataset"] == "synthetic"
    history = client.get_metric_history(run.info.run_id, "vintage_micro_pooled_priority_0.5")
    assert sorted(m.step for m in history) == [0, 10, 84]
    assert {"baseline_vintage_micro", "wall_minutes"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"vintage_curve.png", "vintage_curve.csv"} <= artifacts


def test_steps_are_capped_sorted_and_distinct():
    assert parse_steps("400,25,all,50", 300) == [25, 50, 300]
    assert parse_steps("10,10,0", 5) == [5]


def test_priority_gain_counts_seeds_won():
    rows = [
        {
            "added": a,
            "selection": s,
            "seed": seed,
            "way": "pooled",
            "vintage_micro": v,
            "vintage_samples": v,
        }
        for a, s, seed, v in [
            (0, "random", 0, 0.3),
            (10, "random", 0, 0.40),
            (10, "random", 1, 0.50),
            (10, "priority 0.5", 0, 0.45),
            (10, "priority 1", 0, 0.55),
            (20, "random", 0, 0.6),
            (20, "priority 0.5", 0, 0.6),
        ]
    ]
    gain = priority_gain(rows)  # the last step (the whole pool) is the same for all
    assert gain["added"].tolist() == [10, 10]
    assert gain["selection"].tolist() == ["priority 0.5", "priority 1"]
    assert np.allclose(gain["gain_micro"], [0.0, 0.1]) and gain["wins"].tolist() == ["1/2", "2/2"]

"""The experiment runner end to end, through the real `mlflow run` and sqlite stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

from posterml.genres import GENRES, genre_slug
from posterml.names import DECISION_RULE_FILE

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "-P",
    "n_trials=2",
    "-P",
    "epochs=2",
    "-P",
    "image_size=48x32",
    "-P",
    "pixel_size=60x40",
    "-P",
    "pca_components=8",
    "-P",
    "backbone=efficientnet_lite0",
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MLFLOW_REGISTRY_URI"] = env["MLFLOW_TRACKING_URI"]
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _mlflow_run(tmp_path: Path, entry: str, *params: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(ROOT),
        "-e",
        entry,
        "--env-manager",
        "local",
        *params,
    ]
    done = subprocess.run(
        cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _runs(tmp_path: Path, filter_string: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(experiments, filter_string, max_results=500)


def test_dataset_inputs_declare_their_schema_and_warn_nothing(tracking_uri):
    """Each split is logged as a dataset input whose schema says ``year`` is a long, with no
    UserWarning: MLflow would infer the schema and hint at every run that integers cannot
    hold missing values (``make demo`` printed one per split)."""
    import json
    import warnings

    from posterml.data.splits import make_splits
    from posterml.data.synthetic import synthetic_dataset
    from posterml.modeling.report import log_dataset

    data = synthetic_dataset(n=60, seed=0)
    splits = make_splits(data, seed=0)
    with mlflow.start_run() as run, warnings.catch_warnings():
        warnings.simplefilter("error")
        log_dataset(data, splits)
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == len(splits.items())
    for logged in inputs:
        schema = json.loads(logged.dataset.schema)["mlflow_colspec"]
        assert [(c["name"], c["type"]) for c in schema] == [
            ("poster_id", "string"),
            ("year", "long"),
            ("genres", "string"),
        ]
        assert json.loads(logged.dataset.profile)["num_rows"] > 0


@pytest.mark.slow
def test_compare_leaves_four_comparable_parent_runs(tmp_path):
    done = _mlflow_run(
        tmp_path,
        "compare",
        *TINY,
        "-P",
        f"storage=sqlite:///{tmp_path / 'optuna.db'}",
        "-P",
        "train_years=1980-2019",
        "-P",
        "test_years=-1969",
    )
    assert "baseline: 2 most frequent genres" in done.stdout
    assert "Inferred schema contains integer" not in done.stderr, done.stderr[-4000:]

    client, parents = _runs(tmp_path, "tags.`posterml.role` = 'experiment'")
    assert sorted(r.data.tags["family"] for r in parents) == [
        "pca_classic",
        "resnet_mlp",
        "resnet_svm",
        "scratch_cnn",
    ]
    for run in parents:
        metrics, tags = run.data.metrics, run.data.tags
        # Per-genre scalars for the test split only; the rest is in the reports tables.
        for genre in GENRES:
            assert f"test_f1_{genre_slug(genre)}" in metrics
            assert f"cross_period_f1_{genre_slug(genre)}" not in metrics
        reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
        assert {"reports/val_report.json", "reports/cross_period_report.json"} <= reports
        assert run.data.tags["mlflow.runName"].startswith(f"{tags['family']} · synthetic · ")
        for average in ("micro", "macro", "weighted", "samples"):
            assert 0.0 <= metrics[f"test_f1_{average}"] <= 1.0
        assert tags["dataset"] == "synthetic" and len(tags["dataset_hash"]) == 64
        assert tags["train_period"] == "1980-2019" and tags["test_period"] == "-1969"
        assert tags["balanced"] in ("true", "false") and tags["model_id"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"figures", "reports", "data", DECISION_RULE_FILE} <= artifacts
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/per_genre_f1.png" in figures and "figures/optuna_history.png" in figures

        trials = client.search_runs(
            [run.info.experiment_id],
            f"tags.`mlflow.parentRunId` = '{run.info.run_id}' and tags.`posterml.role` = 'trial'",
        )
        assert len(trials) == 2
        assert all("val_f1_weighted" in t.data.metrics for t in trials)
        # Trials keep the averages: no per-genre scalars.
        assert not any(k.endswith("_drama") for t in trials for k in t.data.metrics)
        assert all(t.data.tags["mlflow.runName"].startswith(tags["family"]) for t in trials)

    _, compare = _runs(tmp_path, "tags.`posterml.role` = 'compare'")
    assert len(compare) == 1
    # The compare run carries the table as metrics and as its description.
    for run in parents:
        family = run.data.tags["family"]
        assert compare[0].data.metrics[f"{family}_test_f1_micro"] == pytest.approx(
            run.data.metrics["test_f1_micro"]
        )
    assert "baseline_test_f1_micro" in compare[0].data.metrics
    assert "| resnet_svm |" in compare[0].data.tags["mlflow.note.content"]
    assert {p.data.tags["mlflow.parentRunId"] for p in parents} == {compare[0].info.run_id}

    # The README's next step: register the best run of the experiment as @champion.
    done = _mlflow_run(tmp_path, "register", "-P", "balanced_only=false")
    assert "as @champion" in done.stdout
    best = max(parents, key=lambda r: r.data.metrics["val_f1_weighted"])
    champion = client.get_model_version_by_alias("poster-genre-classifier", "champion")
    assert champion.run_id == best.info.run_id


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        sys.executable,
        "-m",
        "experiments.run",
        "pca_classic",
        "--study-name",
        "shared",
        "--storage",
        storage,
        "--n-trials",
        "4",
        "--pixel-size",
        "60x40",
        "--pca-components",
        "8",
        "--log-model",
        "false",
    ]
    env = _env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    # Create the tracking schema first: MLflow's own migration is not meant to race.
    # The Optuna storage is left for the workers to create together (the runner retries).
    mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()
    workers = [
        subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-4000:]

    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 8
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    _, trials = _runs(tmp_path, "tags.`posterml.role` = 'trial'")
    assert sorted(int(t.data.tags["optuna_trial"]) for t in trials) == list(range(8))
    run_ids = {t.user_attrs["mlflow_run_id"] for t in study.trials}
    assert run_ids == {t.info.run_id for t in trials}
    # Each worker samples with its own seed: one shared seed made both workers try the same
    # settings in the same order (2 workers x 3 trials, 3 distinct settings). Distinct seeds
    # can still repeat a setting by chance (knn's n_neighbors has ~48 values), so compare
    # each worker's sequence, not every pair of trials.
    parent_of = {t.info.run_id: t.data.tags["mlflow.parentRunId"] for t in trials}
    sequences: dict[str, list] = {}
    for trial in sorted(study.trials, key=lambda t: t.number):
        worker = parent_of[trial.user_attrs["mlflow_run_id"]]
        sequences.setdefault(worker, []).append(tuple(sorted(trial.params.items())))
    assert len(sequences) == 2
    first, second = sequences.values()
    assert first != second, sequences


@pytest.mark.slow
def test_unreadable_images_are_reported_and_skipped_not_fatal(tracking_uri, tmp_path):
    from posterml.data.synthetic import write_synthetic
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    root = write_synthetic(tmp_path / "posters", n=120, seed=1)
    images = sorted((root / "images").iterdir())
    images[0].write_bytes(b"")  # zero bytes
    images[1].write_bytes(images[1].read_bytes()[:200])  # truncated JPEG
    images[2].write_text("not a poster")  # text named .jpg
    run_id = run_experiment(
        experiment_config(
            "pca_classic",
            data=str(root),
            n_trials=1,
            pixel_size="30x20",
            pca_components=5,
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            log_model=False,
        )
    )

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["n_unreadable_images"] == 3
    listed = client.download_artifacts(run_id, "data/unreadable_images.csv", str(tmp_path))
    text = Path(listed).read_text()
    assert all(p.name in text for p in images[:3])
    assert "empty" in text and "truncated" in text and "not an image" in text


@pytest.mark.slow
def test_main_recipe_and_finetune_run_end_to_end_and_main_registers(tmp_path):
    """`mlflow run .` (the shipped recipe) and the fine-tuning family on the synthetic set:
    decision statistics, per-decade F1 beside the baseline, the F1-by-decade figure; then
    `register` picks main's run with no extra flags."""
    storage = ["-P", f"storage=sqlite:///{tmp_path / 'optuna.db'}"]
    period = ["-P", "train_years=1980-2019", "-P", "test_years=-1979"]
    _mlflow_run(tmp_path, "main", "-P", "n_trials=2", *storage, *period)
    _mlflow_run(tmp_path, "finetune", "-P", "n_trials=1", "-P", "epochs=2", *storage, *period)

    client, parents = _runs(tmp_path, "tags.`posterml.role` = 'experiment'")
    by_family = {r.data.tags["family"]: r for r in parents}
    assert set(by_family) == {"resnet_svm", "finetune"}
    for run in parents:
        metrics = run.data.metrics
        for split in ("val", "test", "cross_period"):
            assert metrics[f"{split}_genres_per_poster"] <= 5
            assert metrics[f"{split}_max_overprediction"] >= 0
            assert f"{split}_baseline_f1_micro" in metrics
            assert 0 <= metrics[f"{split}_maybe_per_poster"] <= 2  # the maybe tier, per split
            assert metrics[f"{split}_found_recall_micro"] >= metrics[f"{split}_recall_micro"]
        assert "test_maybe_precision_drama" in metrics and "val_maybe_recall_drama" not in metrics
        decades = [
            k for k in metrics if k.startswith("cross_period_f1_micro_") and k.endswith("0s")
        ]
        assert decades, sorted(metrics)[:20]
        for key in decades:
            assert key.replace("_f1_", "_baseline_f1_") in metrics
        assert run.data.tags["beats_baseline"] in ("true", "false")
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/f1_by_decade.png" in figures
        reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
        assert {"reports/test_tiers.json", "reports/val_tiers.json"} <= reports
        rule = client.download_artifacts(run.info.run_id, DECISION_RULE_FILE, str(tmp_path))
        assert "Science Fiction" in Path(rule).read_text()  # thresholds carry genre names
    main = by_family["resnet_svm"]
    assert main.info.run_name.startswith("resnet_svm · synthetic · ")  # named under mlflow run
    note = main.data.tags["mlflow.note.content"]  # the description the UI shows first
    assert "| test |" in note and "baseline" in note and "genres/poster" in note
    assert "maybe/poster" in note
    contexts = {t.value for d in main.inputs.dataset_inputs for t in d.tags}
    assert contexts == {"training", "validation", "test", "cross-period"}
    assert main.data.params["backbone"] == "efficientnet_lite0"
    assert main.data.tags["balanced"] == "true"
    assert main.data.tags["beats_baseline"] == "true", main.data.metrics

    done = _mlflow_run(tmp_path, "register")
    assert "as @champion" in done.stdout
    champion = client.get_model_version_by_alias("poster-genre-classifier", "champion")
    assert champion.run_id == main.info.run_id or (
        by_family["finetune"].data.tags["beats_baseline"] == "true"
        and champion.run_id == by_family["finetune"].info.run_id
    )

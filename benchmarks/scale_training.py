"""Time and memory of fitting the recipe's head on N posters, far past today's data set.

    python -m benchmarks.scale_training --n 50000 [--head auto|exact|nystroem]
    python -m benchmarks.scale_training --smoke   # seconds: synthetic set, 300 rows

The feature vectors are the real EfficientNet-Lite0 features of ``--data`` (from the feature
cache; extracted on first use, not timed), resampled with replacement to ``--n`` rows, each
with Gaussian noise of ``--noise`` times every feature's standard deviation added, and its
source poster's genres: the genre structure of real posters, at any size. ``--head auto`` is
the head a run of the recipe picks for ``n`` training posters (``posterml.modeling.scale``:
the exact RBF SVM up to ``max_exact_posters``, Nystroem above).

One fit (19 genres, ``C`` and ``gamma_scale`` as the 5,533-poster grid chose) runs in a fresh
process that first loads the rows: ``peak_rss_gib`` is that process's peak resident memory
(``ru_maxrss``), the features included, TensorFlow not. The last line is
``n=N fit_s=S peak_rss_gib=X``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.classifiers.nystroem import NystroemSVMClassifier
from posterml.classifiers.svm import RBFSVMClassifier
from posterml.modeling.scale import EXACT_MAX_POSTERS, plan_head

DEFAULT_DATA = SHARED_POSTERS
# The best of research.representations' grid on ../shared/posters (val weighted F1).
PARAMS = {"C": 0.5, "gamma_scale": 0.5, "class_weight": "balanced"}


def resampled(X: np.ndarray, Y: np.ndarray, n: int, noise: float, seed: int):
    """``n`` rows drawn from ``X`` with replacement, each plus Gaussian noise of ``noise``
    feature standard deviations, with its source row's genres."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(X), n)
    scale = (noise * X.std(axis=0)).astype(np.float32)
    return X[rows] + rng.standard_normal((n, X.shape[1]), dtype=np.float32) * scale, Y[rows]


def _fit(path: str, head: str, seed: int) -> tuple[float, float, float]:
    """In a fresh process: load the rows, fit ``head``; (fit s, baseline GiB, peak GiB)."""
    arrays = np.load(path)
    X, Y = arrays["X"], arrays["Y"]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if head == "exact":
        model = RBFSVMClassifier(**PARAMS)
    else:
        model = NystroemSVMClassifier(**PARAMS, random_state=seed)
    start = time.perf_counter()
    model.fit(X, Y)
    fit_s = time.perf_counter() - start
    return fit_s, baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--n", type=int, default=50_000, help="training rows to fit on")
    parser.add_argument("--head", default="auto", choices=("auto", "exact", "nystroem"))
    parser.add_argument("--max-exact-posters", type=int, default=EXACT_MAX_POSTERS)
    parser.add_argument("--noise", type=float, default=0.3, help="in feature std units")
    parser.add_argument("--seed", type=int, default=42)
    args = _smoke.parse_args(parser, argv, data="synthetic", n=300, head="nystroem")
    if args.n < 2:
        raise SystemExit("--n must be >= 2")

    from posterml.data.sources import load_dataset
    from posterml.features.backbone import BackboneFeaturizer

    dataset = load_dataset(args.data)
    features = BackboneFeaturizer("efficientnet_lite0", progress=False).transform_paths(
        dataset.image_paths
    )
    X, Y = resampled(features.features, dataset.labels[features.ok], args.n, args.noise, args.seed)
    plan = plan_head(
        args.n, args.n, X.shape[1], args.head, args.max_exact_posters, memory_gib=float("inf")
    )
    print(f"{len(features.features)} posters' features from {args.data}, resampled to {args.n:,}")
    print(f"head: {plan.head} ({plan.reason}); {os.cpu_count()} cores", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="posterml-scale-") as folder:
        path = str(Path(folder) / "rows.npz")
        np.savez(path, X=X, Y=Y)
        del X, Y, features
        context = multiprocessing.get_context("spawn")  # a fresh process: its own peak
        with context.Pool(1) as pool:
            fit_s, baseline, peak = pool.apply(_fit, (path, plan.head, args.seed))
    print(f"fit process: {baseline:.2f} GiB once its rows were loaded")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"n={args.n} fit_s={fit_s:.1f} peak_rss_gib={peak:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

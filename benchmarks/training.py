"""How one search trial's training time grows with the number of training posters.

    python -m benchmarks.training [--data ../shared/posters] [--sizes 500,1000,2000,4000]
    python -m benchmarks.training --smoke   # seconds: synthetic set, sizes 50,100

One ``resnet_svm`` trial (the recipe's family: 19 RBF SVMs on a shared precomputed kernel,
``class_weight=balanced``, C=1.6, gamma_scale=15.7 as the 1,500-poster recipe run chose) fitted
on the EfficientNet-Lite0 features of the first ``n`` posters, for each size: the kernel
(distances, then ``exp``) and the 19 solves are timed apart, and the growth exponent between
consecutive sizes is printed (time ~ n^k). Features come from the feature cache (extracted on
first use, not timed). This is what a search worker pays per trial, and why the number of
training posters, not the number of posters to score, bounds training.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.classifiers.svm import RBFSVMClassifier, squared_distances
from posterml.data.sources import load_dataset
from posterml.features.backbone import BackboneFeaturizer

DEFAULT_DATA = SHARED_POSTERS
PARAMS = {"C": 1.575, "gamma_scale": 15.70, "class_weight": "balanced"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--sizes", default="500,1000,2000,4000")
    args = _smoke.parse_args(parser, argv, data="synthetic", sizes="50,100")
    sizes = [int(s) for s in args.sizes.split(",")]

    dataset = load_dataset(args.data)
    n = min(max(sizes), len(dataset))
    features = BackboneFeaturizer("efficientnet_lite0").transform_paths(dataset.image_paths[:n])
    X, Y = features.features, dataset.labels[:n][features.ok]
    print(f"{len(X)} posters' features from {args.data}; {os.cpu_count()} cores")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| training posters | distances s | exp + 19 solves s | trial s | growth (time ~ n^k) |")
    print("|---|---|---|---|---|")
    previous = None
    for size in (s for s in sizes if s <= len(X)):
        start = time.perf_counter()
        squared_distances(X[:size], X[:size])
        kernel_s = time.perf_counter() - start
        start = time.perf_counter()
        RBFSVMClassifier(**PARAMS).fit(X[:size], Y[:size])
        trial_s = time.perf_counter() - start  # includes its own kernel
        growth = ""
        if previous is not None:
            growth = f"{math.log(trial_s / previous[1]) / math.log(size / previous[0]):.2f}"
        print(
            f"| {size:,} | {kernel_s:.2f} | {max(trial_s - kernel_s, 0.0):.2f} | "
            f"{trial_s:.2f} | {growth} |"
        )
        previous = (size, trial_s)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Feature-extraction throughput per backbone: cold cache, warm cache, and where time goes.

    python -m benchmarks.features [--n 512] [--data ../shared/posters] [--batch-size 32]
    python -m benchmarks.features --smoke   # seconds: 16 synthetic posters, Lite0 only

For each backbone: decode-only and model-only rates on up to 512 posters (to show which one
limits), then ``BackboneFeaturizer.transform_paths`` on ``--n`` real posters end to end
(hash, decode, model, cache writes) with a fresh temporary cache (cold), then again with a
new featurizer on the same cache (warm: hash + cache reads only). Model build and graph
tracing are timed apart: they are paid once per process, not per image. CPU ms/img is process
CPU time (all threads) per image; with the load average it tells a busy machine from a slow
pipeline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.data.sources import load_dataset
from posterml.features.image_stream import iter_image_batches

STAGE_N = 512
DEFAULT_DATA = SHARED_POSTERS


@dataclass
class Timing:
    seconds: float
    cpu_seconds: float
    n: int

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.n

    def cell(self) -> str:
        return f"{self.rate:7.1f} img/s ({self.cpu_ms:5.1f} CPU ms/img)"


def timed(fn, n: int) -> tuple[Timing, object]:
    """Wall and process-CPU time of ``fn()``, as a rate over ``n`` images."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, n), result


def bench_backbone(name: str, paths: list[str], batch_size: int, workers: int | None) -> dict:
    from posterml.features.backbone import BackboneFeaturizer
    from posterml.features.backbone_registry import BackboneUnavailableError

    with tempfile.TemporaryDirectory(prefix="posterml-bench-cache-") as cache_root:
        featurizer = BackboneFeaturizer(
            name,
            batch_size=batch_size,
            cache_root=Path(cache_root),
            workers=workers,
            progress=False,
        )
        size = featurizer.input_size
        try:
            start = time.perf_counter()
            featurizer.transform_images([np.zeros((*size, 3), np.uint8)] * batch_size)
            build_s = time.perf_counter() - start
        except BackboneUnavailableError as exc:
            return {"name": name, "unavailable": str(exc).splitlines()[0]}

        def decode_all() -> list[np.ndarray]:
            batches = iter_image_batches(
                stage_paths, size, batch_size=batch_size, workers=workers, progress=False
            )
            return [pixels for _, pixels in batches]

        def model_all() -> None:
            for pixels in decoded:
                featurizer.transform_pixels(pixels)

        # Stage-alone rates on at most STAGE_N posters: decoded posters are held in memory.
        stage_paths = paths[:STAGE_N]
        decode, decoded = timed(decode_all, len(stage_paths))
        model, _ = timed(model_all, len(stage_paths))
        decoded.clear()  # free the decoded posters before the end-to-end run
        cold, result = timed(lambda: featurizer.transform_paths(paths), len(paths))
        warm_featurizer = BackboneFeaturizer(
            name,
            batch_size=batch_size,
            cache_root=Path(cache_root),
            workers=workers,
            progress=False,
        )
        warm, warm_result = timed(lambda: warm_featurizer.transform_paths(paths), len(paths))
        # The warm run must read everything, and read exactly what the cold run computed.
        assert warm_result.n_computed == 0
        assert np.array_equal(warm_result.features, result.features)
        return {
            "name": name,
            "build_s": build_s,
            "decode": decode,
            "model": model,
            "cold": cold,
            "warm": warm,
            "failures": len(result.failures),
        }


def limit_note(row: dict) -> str:
    """Which stage bounds the end-to-end rate, from the stage-alone CPU costs."""
    decode, model, cold = row["decode"], row["model"], row["cold"]
    share = decode.cpu_ms / (decode.cpu_ms + model.cpu_ms)
    bound = "model-bound" if model.rate < decode.rate else "decode-bound"
    return (
        f"{bound}: decode {decode.cpu_ms:.1f} + model {model.cpu_ms:.1f} CPU ms/img "
        f"(decode {share:.0%} of CPU); cold run used "
        f"{cold.cpu_seconds / cold.seconds:.2f} of {os.cpu_count()} cores"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="poster folder or 'synthetic'")
    parser.add_argument("--n", type=int, default=512, help="posters to featurize")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--backbones", default="efficientnet_lite0,resnet50")
    parser.add_argument(
        "--intra-threads",
        type=int,
        default=0,
        help="tf.config.threading intra-op threads (0: TensorFlow's default)",
    )
    parser.add_argument("--inter-threads", type=int, default=0)
    # Smoke: Lite0 only (ResNet50's weights are a download), batches of 8 so there are two.
    args = _smoke.parse_args(
        parser, argv, data="synthetic", n=16, batch_size=8, backbones="efficientnet_lite0"
    )

    if args.intra_threads or args.inter_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    paths = load_dataset(args.data).image_paths[: args.n]
    load_before = os.getloadavg()[0]
    rows = [
        bench_backbone(name, paths, args.batch_size, args.workers)
        for name in args.backbones.split(",")
    ]
    load_after = os.getloadavg()[0]

    print(
        f"\n{len(paths)} posters from {args.data}; {os.cpu_count()} cores; batch size "
        f"{args.batch_size}; decode threads {args.workers or os.cpu_count()}; TF threads "
        f"intra={args.intra_threads or 'default'} inter={args.inter_threads or 'default'}; "
        f"load average {load_before:.1f} -> {load_after:.1f} (others' jobs share the cores)"
    )
    header = (
        "| backbone | cold cache, end to end | warm cache | decode only | model only "
        "| build+trace |"
    )
    print(header)
    print("|" + "---|" * 6)
    for row in rows:
        if "unavailable" in row:
            print(f"| {row['name']} | unavailable offline | | | | |")
            continue
        print(
            f"| {row['name']} | {row['cold'].cell()} | {row['warm'].rate:7.0f} img/s | "
            f"{row['decode'].cell()} | {row['model'].cell()} | {row['build_s']:.1f} s |"
        )
    for row in rows:
        if "unavailable" in row:
            print(f"{row['name']}: {row['unavailable']}")
        else:
            print(f"{row['name']}: {limit_note(row)}; {row['failures']} unreadable")


if __name__ == "__main__":
    main()

"""What one served request costs, stage by stage, in CPU ms, against the model's own forward pass.

    python -m benchmarks.request_cost --model models:/poster-genre-classifier@champion
    python -m benchmarks.request_cost --model runs:/RUN_ID/model --n 200 --repeats 5
    python -m benchmarks.request_cost --smoke   # the smoke model, synthetic posters

Loads the model as ``mlflow models serve`` does (``mlflow.pyfunc.load_model``: the model's
``load_context``, its TensorFlow settings included), then times each stage of a one-poster
request in this process, as CPU ms per request (``time.process_time``: every thread of the
process, TensorFlow's included), the median over ``--repeats`` rounds of ``--n`` requests:

* ``parse``: MLflow reads the JSON body into a DataFrame (``_parse_json_data``);
* ``schema``: MLflow enforces the model's input signature on it (``_enforce_schema``);
* ``decode``: the rows' checks and decoding, kept as the model's small arrays
  (``posterml.serving.rows.decode_images``);
* ``features``: the featurizer on the decoded poster (preprocessing + the forward pass);
* ``head``: classifier, decision layer and the answer's DataFrame (``predict_frame``);
* ``respond``: MLflow writes the answer as JSON (``predictions_to_json``);
* ``in-process request``: all of it, through MLflow's own ``invocations``;
* ``forward pass``: the model's own cost, the Lite0 graph on one prepared poster.

Then (unless ``--no-server``) it starts the real server (``mlflow models serve``, loopback),
reads the CPU its processes spend per one-poster request from ``/proc`` (``served``; what is
beyond ``in-process request`` is HTTP, uvicorn and asyncio) and the images/s of
``--batch-size``-poster requests, against the feature throughput: the featurizer alone on
batches of that size, in a fresh process with TensorFlow's defaults (as
``benchmarks.features`` measures it). The last line holds the figures: ``cost_ratio`` =
served CPU ms / forward pass CPU ms, ``batch_ratio`` = served images/s / feature images/s.
"""

from __future__ import annotations

import argparse
import base64
import io
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import _smoke
from benchmarks.serving import DEFAULT_MODEL, DEFAULT_POSTERS, HEADERS, payload, poster_files


def cpu_ms(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Median over ``repeats`` rounds of the process CPU ms per call of ``fn(i)``, i < n."""
    rounds = []
    for _ in range(repeats):
        start = time.process_time()
        for i in range(n):
            fn(i)
        rounds.append((time.process_time() - start) * 1000 / n)
    return statistics.median(rounds)


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the processes in process group ``pgid`` so far."""
    import psutil

    total = 0.0
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                times = process.cpu_times()
                total += times.user + times.system
        except (psutil.Error, ProcessLookupError):
            continue
    return total


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- in-process stages
def stage_costs(model, bodies: list[bytes], n: int, repeats: int) -> dict[str, float]:
    """CPU ms per one-poster request of each stage, in this process (see the module doc)."""
    from mlflow.models.utils import _enforce_schema
    from mlflow.pyfunc import scoring_server

    from posterml.serving.rows import decode_images

    wrapper = model.unwrap_python_model()
    pipeline, limits = wrapper.pipeline, wrapper.limits
    featurizer = pipeline.featurizer
    schema = model.metadata.get_input_schema()
    k = len(bodies)
    frames = [scoring_server._parse_json_data(b, model.metadata, schema).data for b in bodies]
    enforced = [_enforce_schema(f, schema) for f in frames]
    images = [decode_images(f, limits, pipeline) for f in enforced]
    features = [pipeline.features(im) for im in images]
    answers = [
        pipeline.predict_frame(im, features=f) for im, f in zip(images, features, strict=True)
    ]
    # The model's own cost: the Keras graph on one poster, already resized and normalised.
    one = np.stack([featurizer.prepare_image(im.pixels) for im in images[0]])
    inputs = np.ascontiguousarray(featurizer.preprocessing(one), dtype=np.float32)
    graph = featurizer._graph_call() if hasattr(featurizer, "_graph_call") else None
    stages = {
        "parse": lambda i: scoring_server._parse_json_data(bodies[i % k], model.metadata, schema),
        "schema": lambda i: _enforce_schema(frames[i % k], schema),
        "decode": lambda i: decode_images(enforced[i % k], limits, pipeline),
        "features": lambda i: pipeline.features(images[i % k]),
        "head": lambda i: pipeline.predict_frame(images[i % k], features=features[i % k]),
        "respond": lambda i: scoring_server.predictions_to_json(answers[i % k], io.StringIO()),
        "in-process request": lambda i: scoring_server.invocations(
            bodies[i % k], "application/json", model, schema
        ),
    }
    if graph is not None:  # a backbone featurizer (pixel ones have no network)
        stages["forward pass"] = lambda i: np.asarray(graph(inputs))
    for fn in stages.values():  # warm every path (graphs traced, caches filled)
        for i in range(min(3, n)):
            fn(i)
    return {name: cpu_ms(fn, n, repeats) for name, fn in stages.items()}


def feature_rate(featurizer_dir: str, batch_size: int, batches: int) -> tuple[float, float]:
    """Images/s and CPU ms per image of the featurizer alone on uint8 batches of
    ``batch_size``, in this (fresh) process with TensorFlow's default threads."""
    from posterml.features.loading import load_featurizer

    featurizer = load_featurizer(Path(featurizer_dir))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (batch_size, *featurizer.image_size, 3), dtype=np.uint8)
    for _ in range(2):
        featurizer.transform_pixels(pixels)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        featurizer.transform_pixels(pixels)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batches * batch_size / wall, cpu * 1000 / (batches * batch_size)


# --------------------------------------------------------------------------- the live server
def served_costs(
    model_uri: str,
    tracking_uri: str | None,
    singles: list[bytes],
    batches: list[bytes],
    batch_size: int,
    n: int,
    repeats: int,
) -> dict[str, float]:
    """Server CPU ms per one-poster request (its process group, from /proc) and the wall
    images/s of ``batch_size``-poster requests, one client, on a warm server."""
    import requests

    from benchmarks._server import LocalModelServer

    with tempfile.TemporaryDirectory(prefix="posterml-cost-") as tmp:
        server = LocalModelServer(model_uri, Path(tmp), tracking_uri).start()
        try:
            pgid = server.process.pid  # its own session: pgid == pid
            url = f"{server.url}/invocations"
            with requests.Session() as session:

                def post(body: bytes) -> None:
                    response = session.post(url, data=body, headers=HEADERS, timeout=120)
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")

                for body in singles[:5] + batches[:1]:
                    post(body)
                per_request = []
                for _ in range(repeats):
                    start = group_cpu_s(pgid)
                    for i in range(n):
                        post(singles[i % len(singles)])
                    per_request.append((group_cpu_s(pgid) - start) * 1000 / n)
                rates = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    for body in batches:
                        post(body)
                    rates.append(len(batches) * batch_size / (time.perf_counter() - start))
        finally:
            server.stop()
    return {"served": statistics.median(per_request), "batch_images_s": statistics.median(rates)}


# --------------------------------------------------------------------------- report
def table(costs: dict[str, float]) -> str:
    total = costs["in-process request"]
    rows = []
    for name, value in costs.items():
        share = f"{value / total:6.1%}" if name in STAGES else ""
        rows.append(f"{name:<20} {value:8.2f} CPU ms  {share}")
    return "\n".join(rows)


STAGES = ("parse", "schema", "decode", "features", "head", "respond")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model URI to load and serve")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store holding --model "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument("--n", type=int, default=100, help="requests per round of a stage")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per stage (median)")
    parser.add_argument("--batch-size", type=int, default=32, help="posters per batch request")
    parser.add_argument("--batches", type=int, default=6, help="batch requests per round")
    parser.add_argument("--no-server", action="store_true", help="in-process stages only")
    parser.add_argument("--posters", type=Path, default=DEFAULT_POSTERS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _smoke.parse_args(build_parser(), argv, n=3, repeats=1, batch_size=4, batches=2)
    if args.smoke:
        model = _smoke.smoke_model()
        args.model, args.tracking_uri = model.model_uri, model.tracking_uri
        args.posters = _smoke.synthetic_root()
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not (args.posters / "labels.csv").is_file():
        raise SystemExit(f"{args.posters}: no labels.csv (posters are needed)")
    import mlflow

    images = [
        base64.b64encode(p.read_bytes()).decode("ascii")
        for p in poster_files(args.posters, max(32, args.batch_size))
    ]
    singles = [payload([b]) for b in images]
    batches = [
        payload([images[(k * args.batch_size + j) % len(images)] for j in range(args.batch_size)])
        for k in range(args.batches)
    ]
    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="posterml-cost-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(args.model, dst_path=tmp))
        featurizer_dir = next(local.rglob("featurizer.json")).parent
        # The baseline first, in a fresh process: TensorFlow's defaults, not the server's.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            feature_s, feature_cpu = pool.apply(
                feature_rate, (str(featurizer_dir), args.batch_size, args.batches)
            )
        model = mlflow.pyfunc.load_model(str(local))
        costs = stage_costs(model, singles, args.n, args.repeats)
    served = {}
    if not args.no_server:
        served = served_costs(
            args.model, args.tracking_uri, singles, batches, args.batch_size, args.n, args.repeats
        )
        costs["served"] = served["served"]
    print(table(costs))
    print(
        f"feature throughput ({args.batch_size}-poster batches, TF defaults): "
        f"{feature_s:.1f} images/s, {feature_cpu:.2f} CPU ms/image"
    )
    print(f"load average after: {load_average()}")
    forward = costs.get("forward pass", float("nan"))
    line = (
        f"request_cpu_ms={costs['in-process request']:.2f} forward_cpu_ms={forward:.2f} "
        f"batched_forward_cpu_ms={feature_cpu:.2f}"
    )
    if served:
        line += (
            f" served_cpu_ms={served['served']:.2f} cost_ratio={served['served'] / forward:.2f}"
            f" batch_images_s={served['batch_images_s']:.1f} feature_images_s={feature_s:.1f}"
            f" batch_ratio={served['batch_images_s'] / feature_s:.2f}"
        )
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

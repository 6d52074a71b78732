"""Latency and throughput of the real scoring server on real posters.

    python -m benchmarks.serving --model models:/poster-genre-classifier@champion --n 200
    python -m benchmarks.serving --url http://127.0.0.1:5000 --n 200   # a running server
    python -m benchmarks.serving --smoke   # the smoke model, a few synthetic posters

Starts ``mlflow models serve`` (local env, 127.0.0.1, a free port) unless ``--url`` is given,
warms it up, then measures the latency (p50/p95) of ``--n`` single-image requests and the
throughput of 32-image requests, on posters from ``../shared/posters`` (base64 payloads are
built before timing, so the numbers are the server's: HTTP + JSON + decode + model). Every
loop is bounded and only loopback addresses are ever contacted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from benchmarks._server import LocalModelServer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POSTERS = SHARED_POSTERS
DEFAULT_MODEL = "models:/poster-genre-classifier@champion"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HEADERS = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- payloads
def poster_files(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` distinct posters (fewer if the folder is smaller), a fixed random sample."""
    table = pd.read_csv(root / "labels.csv", dtype=str)
    paths = [root / p for p in table["image"]]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    return [paths[i] for i in chosen if paths[i].is_file()]


def payload(images_b64: list[str]) -> bytes:
    """The request body for these images, serialized once, outside the timed loop."""
    rows = [[b] for b in images_b64]
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()


def post(session, url: str, body: bytes) -> float:
    """Seconds for one request; a non-200 answer is an error (numbers would be meaningless)."""
    start = time.perf_counter()
    response = session.post(f"{url}/invocations", data=body, headers=HEADERS, timeout=120)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
    return elapsed


# --------------------------------------------------------------------------- measurements
@dataclass
class Results:
    n_single: int
    single_p50_ms: float
    single_p95_ms: float
    single_mean_ms: float
    n_batches: int
    batch_size: int
    batch_p50_ms: float
    images_per_second: float
    mean_image_kb: float


def measure(url: str, images: list[str], n: int, batch_size: int, warmup: int) -> Results:
    """Warm up, then ``n`` single-image requests and ~``n`` images in ``batch_size`` requests."""
    import requests

    singles = [payload([images[i % len(images)]]) for i in range(n)]
    n_batches = max(3, n // batch_size)
    batches = [
        payload([images[(k * batch_size + j) % len(images)] for j in range(batch_size)])
        for k in range(n_batches)
    ]
    with requests.Session() as session:
        for body in singles[:warmup] + batches[: max(1, warmup // 3)]:
            post(session, url, body)
        single = np.array([post(session, url, body) for body in singles]) * 1000
        batch = np.array([post(session, url, body) for body in batches])
    return Results(
        n_single=n,
        single_p50_ms=float(np.percentile(single, 50)),
        single_p95_ms=float(np.percentile(single, 95)),
        single_mean_ms=float(single.mean()),
        n_batches=n_batches,
        batch_size=batch_size,
        batch_p50_ms=float(np.percentile(batch, 50) * 1000),
        images_per_second=n_batches * batch_size / float(batch.sum()),
        mean_image_kb=float(np.mean([len(b) * 3 / 4 for b in images]) / 1024),
    )


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} usable of {os.cpu_count()}"


def table(results: Results, model: str, startup_s: float | None) -> str:
    rows = [
        ("model", model),
        ("CPU cores", cores()),
        ("server startup", f"{startup_s:.1f} s" if startup_s is not None else "(running server)"),
        ("mean poster size", f"{results.mean_image_kb:.0f} KB"),
        (f"single image p50 ({results.n_single} requests)", f"{results.single_p50_ms:.1f} ms"),
        ("single image p95", f"{results.single_p95_ms:.1f} ms"),
        ("single image mean", f"{results.single_mean_ms:.1f} ms"),
        (
            f"{results.batch_size}-image request p50 ({results.n_batches} requests)",
            f"{results.batch_p50_ms:.0f} ms",
        ),
        (
            f"throughput ({results.batch_size}-image requests)",
            f"{results.images_per_second:.1f} images/s",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


# --------------------------------------------------------------------------- CLI
def check_loopback(url: str) -> str:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"--url must point at this machine (127.0.0.1), got {url!r}")
    return url.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model URI to serve")
    parser.add_argument("--url", help="benchmark a server already running on 127.0.0.1")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store holding --model "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument("--n", type=int, default=200, help="single-image requests")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=10, help="warm-up requests")
    parser.add_argument("--posters", type=Path, default=DEFAULT_POSTERS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _smoke.parse_args(build_parser(), argv, n=4, batch_size=4, warmup=1)
    if args.smoke:  # the smoke model, served from its own store, on synthetic posters
        model = _smoke.smoke_model()
        args.model, args.tracking_uri = model.model_uri, model.tracking_uri
        args.posters = _smoke.synthetic_root()
    if not (args.posters / "labels.csv").is_file():
        raise SystemExit(f"{args.posters}: no labels.csv (real posters are needed)")
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    files = poster_files(args.posters, max(args.n, args.batch_size))
    images = [base64.b64encode(p.read_bytes()).decode("ascii") for p in files]
    server, startup = None, None
    with tempfile.TemporaryDirectory(prefix="posterml-bench-") as tmp:
        try:
            if args.url:
                url = check_loopback(args.url)
            else:
                # cwd stays the caller's: a relative sqlite tracking URI resolves as here.
                server = LocalModelServer(args.model, Path(tmp))
                start = time.perf_counter()
                server.start()
                startup = time.perf_counter() - start
                url = server.url
            results = measure(url, images, args.n, args.batch_size, args.warmup)
        finally:
            if server is not None:
                server.stop()
    print(table(results, args.url or args.model, startup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

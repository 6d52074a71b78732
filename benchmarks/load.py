"""Concurrent load, and the pixel-bomb request, against the real scoring server on loopback.

    python -m benchmarks.load --model models:/poster-genre-classifier@champion
    python -m benchmarks.load --model runs:/RUN_ID/model --clients 4 --seconds 60 --rows 1
    python -m benchmarks.load --clients 4 --workers 2   # two uvicorn processes, a model each
    python -m benchmarks.load --model models:/poster-genre-classifier@champion --bomb
    python -m benchmarks.load --bomb --bomb-side 3873 --bomb-rows 6   # allowed: 6 x 15 Mpx
    python -m benchmarks.load --smoke   # seconds of load, then a one-image bomb: smoke model

Starts ``mlflow models serve`` (local env, 127.0.0.1, a free port; ``--url`` uses a server
already running on this machine instead), then either

* load: one client, then ``--clients`` threads, post ``--rows``-poster requests back to back
  for ``--seconds`` each (and at most ``--max-requests``), and prints req/s, images/s, p50/p95
  latency, the errors, and the server's resident memory before, at its peak and after; the
  last line holds the figures, ``p50_ratio`` = the clients' p50 / one client's p50; or
* ``--bomb``: posts one request of ``--bomb-rows`` (8) one-bit PNGs of ``--bomb-side``
  squared pixels (6324x6324: ~12 kB each, ~160 MB each once decoded to RGB; the request is
  the issue's 129 kB of JSON), prints the answer and the server's memory before, at its peak
  and after, then checks that a normal poster still gets a 200.

Memory is the sum of the resident set sizes (``VmRSS``) of the server's process group (the
``mlflow`` launcher and its uvicorn worker), read from ``/proc``; it is only known for a server
this script started. Payloads are built before timing; only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks import _smoke
from benchmarks._common import cpu_model
from benchmarks._server import LocalModelServer, process_group_rss
from benchmarks.serving import (
    DEFAULT_MODEL,
    DEFAULT_POSTERS,
    HEADERS,
    check_loopback,
    cores,
    payload,
    poster_files,
)

BOMB_SIDE = 6324  # 6324^2 = 40 Mpx: ~12 kB as a one-bit PNG, far over the per-image limit
SETTLE_S = 3.0  # wait after the last request before reading "after" memory
SAMPLE_EVERY_S = 0.1


# --------------------------------------------------------------------------- memory
class PeakSampler:
    """Samples a process group's RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, pgid: int | None) -> None:
        self.pgid = pgid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, process_group_rss(self.pgid))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> PeakSampler:
        if self.pgid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def mb(n_bytes: int | None) -> str:
    return "n/a (server not started here)" if n_bytes is None else f"{n_bytes / 2**20:,.0f} MB"


# --------------------------------------------------------------------------- payloads
def pixel_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid one-bit PNG of ``side`` x ``side`` pixels that compresses to ~12 kB."""
    image = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(image)  # a frame and a block, so it is not one flat colour
    draw.rectangle([side // 8, side // 8, side * 7 // 8, side * 7 // 8], outline=0, width=40)
    draw.rectangle([side // 4, side // 3, side * 3 // 4, side // 2], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def fallback_poster() -> bytes:
    """A small generated poster, for when ``../shared/posters`` is absent."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (450, 300, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def good_images(posters: Path, n: int) -> list[str]:
    """Base64 of ``n`` real posters (one generated image if there are none)."""
    if (posters / "labels.csv").is_file():
        return [base64.b64encode(p.read_bytes()).decode() for p in poster_files(posters, n)]
    return [base64.b64encode(fallback_poster()).decode()]


# --------------------------------------------------------------------------- load
@dataclass
class LoadResults:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def n_requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())


def run_load(
    url: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int
) -> LoadResults:
    """``clients`` threads post ``bodies`` round robin until ``seconds`` or ``max_requests``."""
    import requests

    lock = threading.Lock()
    results = LoadResults(seconds=0.0)
    sent = 0
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        nonlocal sent
        with requests.Session() as session:
            i = k
            while time.monotonic() < deadline:
                with lock:
                    if sent >= max_requests:
                        return
                    sent += 1
                start = time.perf_counter()
                try:
                    response = session.post(
                        f"{url}/invocations",
                        data=bodies[i % len(bodies)],
                        headers=HEADERS,
                        timeout=120,
                    )
                    error = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except requests.RequestException as exc:
                    error = type(exc).__name__
                elapsed_ms = (time.perf_counter() - start) * 1000
                with lock:
                    if error is None:
                        results.latencies_ms.append(elapsed_ms)
                    else:
                        results.errors[error] = results.errors.get(error, 0) + 1
                i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.seconds = time.perf_counter() - start
    return results


def load_table(args, results: LoadResults, rss: dict[str, int | None]) -> str:
    lat = np.array(results.latencies_ms) if results.latencies_ms else np.array([np.nan])
    n_ok = len(results.latencies_ms)
    errors = ", ".join(f"{k}: {v}" for k, v in results.errors.items()) or "none"
    rows = [
        ("model", args.url or args.model),
        ("CPU", f"{cpu_model()}, {cores()} usable"),
        ("server workers", str(args.workers or 1) if not args.url else "(running server)"),
        ("clients x duration", f"{args.clients} x {results.seconds:.1f} s"),
        ("images per request", str(args.rows)),
        ("requests (ok / all)", f"{n_ok} / {results.n_requests}"),
        (
            "throughput",
            f"{n_ok / results.seconds:.1f} req/s, "
            f"{n_ok * args.rows / results.seconds:.1f} images/s",
        ),
        ("latency p50 / p95", f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f} ms"),
        ("errors", errors),
        ("server RSS before", mb(rss["before"])),
        ("server RSS peak", mb(rss["peak"])),
        ("server RSS after", mb(rss["after"])),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


# --------------------------------------------------------------------------- bomb
def run_bomb(
    url: str,
    pgid: int | None,
    rows: int,
    good: str,
    side: int = BOMB_SIDE,
    settle_s: float = SETTLE_S,
) -> str:
    """Send the pixel-bomb request once; a table of the answer and the server's memory."""
    import requests

    png = pixel_bomb_png(side)
    body = payload([base64.b64encode(png).decode()] * rows)
    before = process_group_rss(pgid) if pgid else None
    with PeakSampler(pgid) as sampler:
        start = time.perf_counter()
        response = requests.post(f"{url}/invocations", data=body, headers=HEADERS, timeout=300)
        elapsed = time.perf_counter() - start
        time.sleep(settle_s)
    after = process_group_rss(pgid) if pgid else None
    try:
        message = response.json().get("message", "")
    except ValueError:
        message = response.text
    # MLflow puts a repr of the input before the model's own message ("...Error: ...").
    message = message.rpartition("Error: ")[2][:300].replace("\n", " ")
    check = requests.post(f"{url}/invocations", data=payload([good]), headers=HEADERS, timeout=60)
    rows_out = [
        (
            "request",
            f"{rows} x {side}x{side} 1-bit PNG ({len(png):,} bytes each), "
            f"{len(body):,} bytes of JSON",
        ),
        ("answer", f"HTTP {response.status_code} in {elapsed:.2f} s"),
        ("message", message or "(predictions)"),
        ("server RSS before", mb(before)),
        ("server RSS peak", mb(sampler.peak if pgid else None)),
        (f"server RSS after (+{settle_s:g} s)", mb(after)),
        ("a normal poster afterwards", f"HTTP {check.status_code}"),
    ]
    width = max(len(name) for name, _ in rows_out)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows_out)


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model URI to serve")
    parser.add_argument("--url", help="use a server already running on 127.0.0.1")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store holding --model "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the load")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap on requests")
    parser.add_argument("--rows", type=int, default=1, help="posters per request")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests")
    parser.add_argument(
        "--workers",
        type=int,
        help="mlflow models serve --workers: uvicorn processes, a model each (MLflow: 1)",
    )
    parser.add_argument("--bomb", action="store_true", help="send the pixel-bomb request")
    parser.add_argument("--bomb-rows", type=int, default=8, help="bomb images in the request")
    parser.add_argument(
        "--bomb-side",
        type=int,
        default=BOMB_SIDE,
        help=f"bomb width = height (default {BOMB_SIDE}; 3873 = 15 Mpx passes the default limits)",
    )
    parser.add_argument("--posters", type=Path, default=DEFAULT_POSTERS)
    parser.add_argument(
        "--settle", type=float, default=SETTLE_S, help="seconds before reading 'after' memory"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _smoke.parse_args(
        build_parser(),
        argv,
        clients=2,
        seconds=2.0,
        max_requests=20,
        warmup=1,
        bomb_rows=1,
        settle=0.5,
    )
    if args.smoke:  # the smoke model, served from its own store, on synthetic posters
        model = _smoke.smoke_model()
        args.model, args.tracking_uri = model.model_uri, model.tracking_uri
        args.posters = _smoke.synthetic_root()
    if args.clients < 1 or args.seconds <= 0 or args.rows < 1:
        raise SystemExit("--clients and --rows must be >= 1 and --seconds > 0")
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    images = good_images(args.posters, max(64, args.rows))
    bodies = [
        payload([images[(k * args.rows + j) % len(images)] for j in range(args.rows)])
        for k in range(max(1, len(images) // args.rows))
    ]
    server = None
    with tempfile.TemporaryDirectory(prefix="posterml-load-") as tmp:
        try:
            if args.url:
                url, pgid = check_loopback(args.url), None
            else:
                server = LocalModelServer(args.model, Path(tmp), workers=args.workers).start()
                url, pgid = server.url, server.process.pid  # its own session: pgid == pid
            if args.bomb:
                print(run_bomb(url, pgid, args.bomb_rows, images[0], args.bomb_side, args.settle))
                return 0
            import requests

            for body in bodies[: args.warmup]:
                requests.post(f"{url}/invocations", data=body, headers=HEADERS, timeout=120)
            # One client first, on the same warm server: the baseline of p50_ratio.
            alone = run_load(url, bodies, 1, args.seconds, args.max_requests)
            rss: dict[str, int | None] = {"before": process_group_rss(pgid) if pgid else None}
            with PeakSampler(pgid) as sampler:
                results = run_load(url, bodies, args.clients, args.seconds, args.max_requests)
            rss["peak"] = sampler.peak if pgid else None
            time.sleep(args.settle)
            rss["after"] = process_group_rss(pgid) if pgid else None
            # Smoke: the bomb's path too, on the server already up (--bomb alone skips the load).
            bomb = None
            if args.smoke:
                bomb = run_bomb(url, pgid, args.bomb_rows, images[0], args.bomb_side, args.settle)
        finally:
            if server is not None:
                server.stop()
    print(load_table(args, results, rss))
    if bomb:
        print(bomb)
    print(summary_line(args, results, alone))
    return 0


def summary_line(args, results: LoadResults, alone: LoadResults) -> str:
    """This run's figures on one line, last: the ``--clients`` load and ``p50_ratio``, its
    p50 over the one-client p50 measured just before on the same server."""
    p50, p50_alone = (
        float(np.percentile(r.latencies_ms, 50)) if r.latencies_ms else float("nan")
        for r in (results, alone)
    )
    n_ok = len(results.latencies_ms)
    return (
        f"clients={args.clients} rows={args.rows} req_s={n_ok / results.seconds:.1f} "
        f"images_s={n_ok * args.rows / results.seconds:.1f} p50_ms={p50:.1f} "
        f"p95_ms={np.percentile(results.latencies_ms or [np.nan], 95):.1f} "
        f"p50_1client_ms={p50_alone:.1f} p50_ratio={p50 / p50_alone:.2f} "
        f"errors={sum(results.errors.values()) + sum(alone.errors.values())}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

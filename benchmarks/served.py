"""What a dealer gets from the served model: real posters through the live server, scored.

    python -m benchmarks.served --model models:/poster-genre-classifier@champion
    python -m benchmarks.served --smoke   # the smoke model, 16 held-out synthetic posters

Starts ``mlflow models serve`` on 127.0.0.1 (or uses ``--url``), sends the posters the model's
run held out (its ``test`` and ``cross_period`` ids, read from the run's ``data/split_ids.csv``, so
no training poster is scored) in 32-image requests, without ``year`` and then with it, and
prints what says whether a dealer can trust its answers: F1
(micro, weighted, samples) beside "Drama + Comedy for every poster", genres per poster
against the truth, and the genres predicted far more often than they occur; for a model that
reads the words, on how many posters its ``text`` holds a word. Before 1980 is reported
separately. Every loop is bounded; only loopback addresses are contacted.

``--camera`` asks what a dealer's phone photos get: each poster is sent as a camera stores a
portrait shot (turned 90 degrees, EXIF orientation 6, re-encoded as JPEG q95), next to the
same turned bytes without the tag (what a decoder that ignores the tag made of them) and the
upright poster re-encoded the same way.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests
from PIL import Image
from sklearn.metrics import f1_score

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from benchmarks._server import LocalModelServer
from posterml.evaluation.metrics import VINTAGE_BEFORE
from posterml.genres import GENRES, to_matrix

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POSTERS = SHARED_POSTERS
BATCH = 32


def held_out(model_uri: str, root: Path) -> pd.DataFrame:
    """The labelled posters the model's run never trained on (test and cross-period)."""
    run_id = mlflow.models.get_model_info(model_uri).run_id
    with tempfile.TemporaryDirectory() as tmp:
        ids = pd.read_csv(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="data/split_ids.csv", dst_path=tmp
            ),
            dtype=str,
        )
    keep = ids[ids["split"].isin(["test", "cross_period"])]["poster_id"]
    labels = pd.read_csv(root / "labels.csv", dtype={"poster_id": str})
    return labels[labels["poster_id"].isin(set(keep))].reset_index(drop=True)


def as_photo(turned: bool, tagged: bool) -> Callable[[bytes], bytes]:
    """Poster bytes -> JPEG q95 bytes, stored turned 90 degrees counter-clockwise and/or
    with the EXIF orientation (6) that tells a viewer to turn it back."""

    def convert(data: bytes) -> bytes:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if turned:
            image = image.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        if tagged:
            exif[0x0112] = 6
        out = io.BytesIO()
        image.save(out, "JPEG", quality=95, exif=exif.tobytes())
        return out.getvalue()

    return convert


def score(
    url: str,
    table: pd.DataFrame,
    root: Path,
    with_year: bool,
    transform: Callable[[bytes], bytes] = bytes,
    texts: list[str | None] | None = None,
) -> list[list[str]]:
    """Each poster's served genres; ``texts`` (when given) gets each answer's ``text``
    (None from a model that does not read the words)."""
    genres: list[list[str]] = []
    session = requests.Session()
    for start in range(0, len(table), BATCH):
        rows = table.iloc[start : start + BATCH]
        images = [
            base64.b64encode(transform((root / p).read_bytes())).decode() for p in rows["image"]
        ]
        columns = ["image", "year"] if with_year else ["image"]
        data = (
            [[b, int(y)] for b, y in zip(images, rows["year"], strict=True)]
            if with_year
            else [[b] for b in images]
        )
        body = {"dataframe_split": {"columns": columns, "data": data}}
        response = session.post(f"{url}/invocations", json=body, timeout=300)
        response.raise_for_status()
        answers = response.json()["predictions"]
        genres += [p["genres"] for p in answers]
        if texts is not None:
            texts += [p.get("text") for p in answers]
    return genres


def report(name: str, y: np.ndarray, pred: np.ndarray, baseline: np.ndarray) -> None:
    f1 = {
        a: f1_score(y, pred, average=a, zero_division=0) for a in ("micro", "weighted", "samples")
    }
    base = {a: f1_score(y, baseline, average=a, zero_division=0) for a in f1}
    rates = pred.mean(axis=0)
    ratio = (pred.sum(axis=0) + 1) / (y.sum(axis=0) + 1)
    worst = np.argsort(-ratio)[:3]
    print(
        f"{name:28s} n={len(y):5d}  "
        + "  ".join(f"{a} {f1[a]:.3f} (baseline {base[a]:.3f})" for a in f1)
        + f"  genres/poster {pred.sum(1).mean():.2f} (true {y.sum(1).mean():.2f})  "
        + "most over-predicted: "
        + ", ".join(f"{GENRES[j]} {rates[j]:.0%} of posters, {ratio[j]:.1f}x" for j in worst)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/poster-genre-classifier@champion")
    parser.add_argument("--data", type=Path, default=DEFAULT_POSTERS)
    parser.add_argument("--url", help="a server already running on 127.0.0.1")
    parser.add_argument("--max-posters", type=int, default=2000)
    parser.add_argument(
        "--camera", action="store_true", help="also send the posters as phone photos"
    )
    args = _smoke.parse_args(parser, argv, max_posters=16, camera=True)
    if args.smoke:  # the smoke model, served from its own store, and its synthetic posters
        args.model = _smoke.smoke_model().model_uri
        args.data = _smoke.synthetic_root()
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    table = held_out(args.model, args.data).head(args.max_posters)
    y = to_matrix(table["genres"].map(lambda g: g.split("|")[:5]).tolist())
    baseline = np.zeros_like(y)
    baseline[:, [GENRES.index("Drama"), GENRES.index("Comedy")]] = 1
    vintage = table["year"].to_numpy() < VINTAGE_BEFORE
    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.url else LocalModelServer(args.model, tmp).start()
        try:
            url = args.url or server.url
            print(f"{args.model}: {len(table)} held-out posters through {url}")
            for with_year in (False, True):
                texts: list[str | None] = []
                pred = to_matrix(score(url, table, args.data, with_year, texts=texts))
                if not with_year and any(t is not None for t in texts):
                    words = [bool(re.search(r"[A-Za-z]{3}", t or "")) for t in texts]
                    print(
                        f"text: read on {np.mean([bool(t) for t in texts]):.0%} of posters, "
                        f"a 3+ letter word on {np.mean(words):.0%}"
                    )
                label = "with year" if with_year else "without year"
                report(f"all, {label}", y, pred, baseline)
                if vintage.any():
                    report(f"before 1980, {label}", y[vintage], pred[vintage], baseline[vintage])
            if args.camera:
                photos = {
                    "upright, JPEG q95": as_photo(turned=False, tagged=False),
                    "phone photo (EXIF turn)": as_photo(turned=True, tagged=True),
                    "turned, tag dropped": as_photo(turned=True, tagged=False),
                }
                for label, transform in photos.items():
                    pred = to_matrix(score(url, table, args.data, False, transform))
                    report(label, y, pred, baseline)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()

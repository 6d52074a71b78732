"""The colour study: palettes of known images, gray handling, skips, and the logged run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from posterml.colors.figures import hue_strip
from posterml.colors.palettes import (
    aggregate_palette,
    dominant_colors,
    is_gray,
    palettes,
    to_hex,
)
from posterml.colors.study import decade_label, decade_order, run_color_study
from posterml.names import ROLE_TAG

RED, BLUE, GRAY = (220, 20, 30), (20, 40, 210), (128, 128, 128)
EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "colors.py"


def blocks(*parts: tuple[tuple[int, int, int], int], width: int = 100) -> Image.Image:
    """An image of horizontal colour bands, each ``rows`` pixels tall (100 rows in all)."""
    rows = [np.broadcast_to(np.array(rgb, np.uint8), (n, width, 3)) for rgb, n in parts]
    return Image.fromarray(np.concatenate(rows))


def close(a, b, tol: int = 6) -> bool:
    return max(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True)) <= tol


def test_dominant_color_of_known_blocks() -> None:
    palette = dominant_colors(blocks((RED, 70), (BLUE, 30)), n_colors=5)
    (first, share), (second, share2) = palette[:2]
    assert close(first, RED) and share == pytest.approx(0.7, abs=0.03)
    assert close(second, BLUE) and share2 == pytest.approx(0.3, abs=0.03)
    assert sum(s for _, s in palette) == pytest.approx(1.0)


def test_drop_grays_removes_grays_and_renormalises() -> None:
    image = blocks((GRAY, 30), ((0, 0, 0), 20), (RED, 30), (BLUE, 20))
    kept = dominant_colors(image, drop_grays=True)
    assert not any(is_gray(rgb) for rgb, _ in kept)
    assert close(kept[0][0], RED) and kept[0][1] == pytest.approx(0.6, abs=0.03)
    assert sum(s for _, s in kept) == pytest.approx(1.0)
    assert is_gray(dominant_colors(image, drop_grays=False)[0][0])  # gray wins otherwise


def test_all_gray_image_returns_its_top_gray() -> None:
    image = blocks(((30, 30, 30), 60), ((240, 240, 240), 40))
    palette = dominant_colors(image, drop_grays=True)
    assert len(palette) == 1 and palette[0][1] == 1.0
    assert close(palette[0][0], (30, 30, 30))
    assert dominant_colors(Image.new("RGB", (40, 60), "white"), drop_grays=True)[0][1] == 1.0


def test_palettes_skip_and_report_unreadable_images(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    blocks((RED, 100)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    result = palettes([good, bad, tmp_path / "missing.jpg"], progress=False)
    assert result.palettes[0] is not None and close(result.palettes[0][0][0], RED, tol=12)
    assert result.palettes[1:] == [None, None]
    assert [Path(p).name for p, _ in result.skipped] == ["bad.jpg", "missing.jpg"]


def test_aggregate_palette_weights_posters_equally() -> None:
    # Three all-red posters and one half blue, half dark blue: red holds 3 of 4 posters.
    pooled = [[(RED, 1.0)]] * 3 + [[(BLUE, 0.5), ((10, 20, 120), 0.5)]]
    palette = aggregate_palette(pooled, n_colors=2, seed=0)
    assert close(palette[0][0], RED) and palette[0][1] == pytest.approx(0.75)
    assert palette[1][1] == pytest.approx(0.25)
    assert aggregate_palette(pooled, n_colors=2, seed=0) == palette  # deterministic for a seed
    assert aggregate_palette([], n_colors=5) == []


def test_decades_and_hue_strip() -> None:
    assert [decade_label(y) for y in (1931, 1969, 1970, 2015)] == [
        "<1970",
        "<1970",
        "1970s",
        "2010s",
    ]
    assert decade_order(np.array([2001, 1955, 1987, 1940])) == ["<1970", "1980s", "2000s"]
    assert hue_strip([BLUE, RED, GRAY], width=3).shape == (1, 3, 3)
    assert to_hex((255, 0, 16)) == "#ff0010"


def write_folder_dataset(root: Path, corrupt: str | None = None) -> Path:
    """A small labelled folder of generated JPEGs; ``corrupt`` names a poster made unreadable."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, (year, genres) in enumerate(
        [
            (1955, "Western"),
            (1978, "Action|Drama"),
            (1994, "Comedy"),
            (2003, "Horror|Thriller"),
            (2012, "Drama"),
            (2016, "Action"),
        ]
    ):
        image = f"images/p{i}.jpg"
        colors = rng.integers(0, 256, (3, 3))
        bands = [
            (tuple(int(c) for c in rgb), n) for rgb, n in zip(colors, (50, 30, 20), strict=True)
        ]
        blocks(*bands, width=60).save(root / image, quality=90)
        rows.append(
            {
                "poster_id": f"p{i}",
                "title": f"Poster {i}",
                "year": year,
                "genres": genres,
                "image": image,
            }
        )
    if corrupt:
        (root / "images" / f"{corrupt}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def artifacts(run_id: str) -> set[str]:
    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


@pytest.mark.slow
def test_run_color_study_on_synthetic_logs_figures(tracking_uri: str) -> None:
    run_id = run_color_study("synthetic", max_posters=40, seed=1, progress=False)
    run = mlflow.get_run(run_id)
    assert run.data.tags["family"] == "colors" and run.data.tags["dataset"] == "synthetic"
    assert run.data.tags["dataset_hash"]
    assert run.data.tags[ROLE_TAG] == "colors"
    assert run.info.run_name == f"colors · synthetic · {run_id[:8]}"
    assert run.data.metrics["n_posters"] == 40 and run.data.metrics["n_skipped"] == 0
    logged = artifacts(run_id)
    assert {"colors_by_genre.png", "colors_by_genre_decade.png", "poster_colors.csv"} <= logged
    assert "skipped_images.csv" not in logged


def load_script():
    """``experiments/colors.py`` as a module (experiments/ is not a package)."""
    spec = importlib.util.spec_from_file_location("colors_script", EXPERIMENT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_script_skips_and_reports_corrupt_image(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Goes through the entry-point script: one tracking store covers both (each costs seconds).
    folder = write_folder_dataset(tmp_path / "posters", corrupt="p3")
    argv = ["--data", str(folder), "--n-colors", "3.0", "--drop-grays", "false"]
    argv += ["--max-posters", "0.0", "--seed", "2", "--no-progress"]  # as MLproject passes them
    assert load_script().main(argv) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    run = mlflow.get_run(run_id)
    assert run.data.params["drop_grays"] == "False" and run.data.params["n_colors"] == "3"
    assert run.data.params["max_posters"] == "None"
    assert run.data.metrics["n_skipped"] == 1 and run.data.metrics["n_posters"] == 5
    expected = {"colors_by_genre.png", "colors_by_genre_decade.png", "skipped_images.csv"}
    assert expected <= artifacts(run_id)
    client = mlflow.MlflowClient()
    skipped = Path(client.download_artifacts(run_id, "skipped_images.csv", str(tmp_path)))
    assert pd.read_csv(skipped)["poster_id"].astype(str).tolist() == ["p3"]
    table = pd.read_csv(client.download_artifacts(run_id, "poster_colors.csv", str(tmp_path)))
    assert "p3" not in set(table["poster_id"].astype(str))
    assert table["dominant"].str.fullmatch("#[0-9a-f]{6}").all()

"""Tests for featurizers, streaming decode and the feature cache.

A tiny registered backbone (conv + batch norm + ReLU6 + pooling, fixed weights) stands in for
the real CNNs, so every test runs in seconds while exercising the same code paths: caching,
bad-image handling, train/serve consistency, save/load without the registry, and folding.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posterml.data.content import file_sha256
from posterml.data.images import DECODER_VERSION, load_image
from posterml.data.sources import load_dataset
from posterml.features.backbone import BackboneFeaturizer
from posterml.features.backbone_registry import (
    Backbone,
    available_backbones,
    register_backbone,
    unregister_backbone,
)
from posterml.features.cache import FeatureCache, namespace_for
from posterml.features.folding import fold_batch_norms
from posterml.features.image_stream import iter_image_batches, map_decoded
from posterml.features.loading import load_featurizer
from posterml.features.pixels import PixelFeaturizer, PixelPCAFeaturizer
from posterml.features.preprocessing import Preprocessing

TINY = "tiny_test_backbone"
TINY_SIZE = (32, 24)
TINY_DIM = 8


TINY_PREPROCESSING = Preprocessing(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
# TINY_PREPROCESSING as posterml saved it before preprocessing was data (probed, as x @ m + b).
LEGACY_TINY_PREPROCESSING = {
    "type": "affine",
    "matrix": [[0.0078125, 0.0, 0.0], [0.0, 0.0078125, 0.0], [0.0, 0.0, 0.0078125]],
    "bias": [-0.9921875, -0.9921875, -0.9921875],
}


def _build_tiny():
    """Conv -> BatchNorm (non-trivial statistics) -> ReLU6 -> pooling, fixed weights."""
    import keras

    inputs = keras.Input((*TINY_SIZE, 3))
    x = keras.layers.Conv2D(TINY_DIM, 3, strides=2, padding="same", use_bias=False, name="conv")(
        inputs
    )
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, x, name="tiny")
    rng = np.random.default_rng(0)
    model.get_layer("conv").set_weights([rng.normal(0, 0.3, (3, 3, 3, TINY_DIM))])
    model.get_layer("bn").set_weights(
        [
            rng.uniform(0.5, 2, TINY_DIM),
            rng.normal(0, 0.5, TINY_DIM),
            rng.normal(0, 0.2, TINY_DIM),
            rng.uniform(0.1, 2, TINY_DIM),
        ]
    )
    return model


def register_tiny() -> None:
    register_backbone(
        Backbone(
            name=TINY,
            input_size=TINY_SIZE,
            feature_dim=TINY_DIM,
            preprocessing_version="tiny-v1",
            build=_build_tiny,
            preprocessing=TINY_PREPROCESSING,
        )
    )


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """The tiny backbone is registered for this module only."""
    register_tiny()
    yield
    unregister_backbone(TINY)


@pytest.fixture(scope="module")
def poster_paths() -> list[str]:
    return load_dataset("synthetic").image_paths


@pytest.fixture
def posters(tmp_path: Path, poster_paths: list[str]) -> list[str]:
    """Twelve synthetic posters copied to a temporary folder (tests may alter them)."""
    folder = tmp_path / "posters"
    folder.mkdir()
    return [shutil.copy(p, folder / Path(p).name) for p in poster_paths[:12]]


def tiny(tmp_path: Path, **options) -> BackboneFeaturizer:
    return BackboneFeaturizer(
        TINY, batch_size=5, cache_root=tmp_path / "cache", progress=False, **options
    )


def write_bad_images(folder: Path, good: str) -> dict[str, str]:
    """Unreadable files of every kind, mapped to a word their failure reason must contain."""
    data = Path(good).read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a poster\n")
    return {
        str(folder / "truncated.jpg"): "truncated",
        str(folder / "empty.jpg"): "empty",
        str(folder / "text.jpg"): "not an image",
        str(folder / "missing.jpg"): "cannot read",
    }


# --- streaming decode -------------------------------------------------------------------------


def test_batches_keep_order_and_skip_bad_images(tmp_path: Path, posters: list[str]) -> None:
    bad = write_bad_images(tmp_path, posters[0])
    paths = posters[:4] + list(bad) + posters[4:]
    failures: list[tuple[str, str]] = []
    batches = list(
        iter_image_batches(paths, (30, 20), batch_size=5, progress=False, failures=failures)
    )
    indices = np.concatenate([i for i, _ in batches])
    good = [i for i, p in enumerate(paths) if p not in bad]
    assert indices.tolist() == good
    assert all(
        0 < len(i) <= 5 and a.shape == (len(i), 30, 20, 3) and a.dtype == np.uint8
        for i, a in batches
    )
    assert {p for p, _ in failures} == set(bad)
    assert all(bad[p] in reason for p, reason in failures)
    gray = next(iter_image_batches(posters, (30, 20), batch_size=3, gray=True, progress=False))
    assert gray[1].shape == (3, 30, 20)


def test_map_decoded_gives_each_input_its_result_or_reason(
    tmp_path: Path, posters: list[str]
) -> None:
    bad = write_bad_images(tmp_path, posters[0])
    paths = [posters[0], *bad, posters[1]]
    decoded = list(map_decoded(paths, min_size=(30, 20), workers=2, window=2))
    assert [(d.index, d.path) for d in decoded] == list(enumerate(map(str, paths)))
    assert [d.ok for d in decoded] == [True] + [False] * len(bad) + [True]
    assert all(bad[d.path] in d.reason and d.result is None for d in decoded if not d.ok)
    assert isinstance(decoded[0].result, Image.Image)  # no fn: the decoded image itself
    sizes = map_decoded(posters[:3], lambda image: image.size, workers=2)
    assert [d.result for d in sizes] == [load_image(p).size for p in posters[:3]]


def _decode_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("decode")}


def test_consumer_may_stop_early(posters: list[str]) -> None:
    """Closing the generator after one batch (what ``break`` does) returns at once and shuts
    the decode pool down: no thread keeps decoding the 238 posters nobody asked for."""
    before = _decode_threads()
    batches = iter_image_batches(posters * 20, (30, 20), batch_size=2, workers=2, progress=False)
    indices, images = next(batches)
    assert indices.tolist() == [0, 1] and images.shape == (2, 30, 20, 3)
    assert _decode_threads() - before  # the pool is running
    batches.close()
    assert not _decode_threads() - before


# --- feature cache ----------------------------------------------------------------------------


def test_second_run_reads_cache_and_only_changed_images_recompute(
    tmp_path: Path, posters: list[str]
) -> None:
    first = tiny(tmp_path).transform_paths(posters)
    assert (first.n_computed, first.n_cached) == (12, 0)
    assert first.features.shape == (12, TINY_DIM) and first.features.dtype == np.float32

    again = tiny(tmp_path).transform_paths(posters)  # a new instance: a later Optuna trial
    assert (again.n_computed, again.n_cached) == (0, 12)
    np.testing.assert_array_equal(again.features, first.features)

    Image.open(posters[3]).rotate(90).save(posters[3])  # same name, new content
    renamed = shutil.copy(posters[5], Path(posters[5]).with_name("renamed.jpg"))
    changed = tiny(tmp_path).transform_paths([*posters, renamed])
    assert (changed.n_computed, changed.n_cached) == (1, 12)
    assert not np.allclose(changed.features[3], first.features[3])
    np.testing.assert_array_equal(
        np.delete(changed.features[:12], 3, 0), np.delete(first.features, 3, 0)
    )
    np.testing.assert_array_equal(changed.features[12], first.features[5])

    uncached = tiny(tmp_path, cache=False).transform_paths(posters[:2])
    assert (uncached.n_computed, uncached.n_cached) == (2, 0)


def _fill_cache(paths: list[str], root: str) -> None:
    """Child process: compute tiny features into a shared cache."""
    register_tiny()
    BackboneFeaturizer(
        TINY, batch_size=4, cache_root=Path(root), progress=False, workers=1
    ).transform_paths(paths)


@pytest.mark.slow
def test_two_processes_fill_one_cache(tmp_path: Path, posters: list[str]) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_fill_cache, args=(posters, str(tmp_path / "cache")))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    cache = tiny(tmp_path).feature_cache()
    assert cache.count() == len(posters)
    assert not list(cache.directory.rglob("*.tmp"))  # no temporary file left behind
    expected = tiny(tmp_path, cache=False).transform_paths(posters).features
    stored = cache.get_many(file_sha256(p) for p in posters)
    np.testing.assert_allclose([stored[file_sha256(p)] for p in posters], expected, atol=1e-6)


def _hammer(root: str, keys: list[str], rounds: int) -> None:
    cache = FeatureCache("stress-1x1-v1", Path(root))
    for _ in range(rounds):
        cache.put_many({k: np.full(2048, i, dtype=np.float32) for i, k in enumerate(keys)})


@pytest.mark.slow
def test_concurrent_writers_never_expose_torn_entries(tmp_path: Path) -> None:
    """Readers racing two rewriting processes always see whole entries: a torn or truncated
    file would read as a miss (or wrong values), and every key exists before they start."""
    keys = [f"{i:064x}" for i in range(20)]
    _hammer(str(tmp_path), keys, 1)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_hammer, args=(str(tmp_path), keys, 60)) for _ in range(2)]
    for writer in writers:
        writer.start()
    cache = FeatureCache("stress-1x1-v1", tmp_path)
    while any(w.is_alive() for w in writers):
        entries = cache.get_many(keys)
        assert len(entries) == len(keys)
        for key, value in entries.items():
            assert value.shape == (2048,) and np.all(value == keys.index(key))
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0


def test_cache_keys_namespaces_and_unreadable_entries(tmp_path: Path) -> None:
    assert namespace_for("efficientnet_lite0", (224, 224), "v1") == "efficientnet_lite0-224x224-v1"
    with pytest.raises(ValueError):
        FeatureCache("../escape", tmp_path)
    cache = FeatureCache("x-1x1-v1", tmp_path)
    key = "ab" * 32
    assert cache.get_many([key]) == {}
    cache.path_for(key).parent.mkdir(parents=True)
    cache.path_for(key).write_bytes(b"garbage")  # e.g. left by a full disk
    assert cache.get_many([key]) == {}
    cache.put_many({key: np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(cache.get_many([key, key])[key], [0, 1, 2])
    assert file_sha256(tmp_path / "nope.jpg") is None


def test_cache_entries_follow_the_umask(tmp_path: Path) -> None:
    cache = FeatureCache("x-1x1-v1", tmp_path)
    key = "cd" * 32
    saved = os.umask(0o022)
    try:
        cache.put_many({key: np.zeros(2, dtype=np.float32)})
    finally:
        os.umask(saved)
    assert stat.S_IMODE(cache.path_for(key).stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in cache.path_for(key).parent.iterdir()] == [f"{key}.npy"]


# --- every featurizer -------------------------------------------------------------------------


def fitted(kind: str, tmp_path: Path, train: list[str]):
    if kind == "backbone":
        return tiny(tmp_path)
    if kind == "pixel_pca":
        return PixelPCAFeaturizer((30, 20), n_components=4, batch_size=5, progress=False).fit(train)
    return PixelFeaturizer((30, 20), progress=False)


KINDS = ["backbone", "pixel_pca", "pixels"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_images_are_reported_and_skipped(kind: str, tmp_path: Path, posters: list[str]) -> None:
    bad = write_bad_images(tmp_path, posters[0])
    paths = posters[:3] + list(bad) + posters[3:6]
    featurizer = fitted(kind, tmp_path, posters + list(bad))
    result = featurizer.transform_paths(paths)
    assert result.ok.tolist() == [p not in bad for p in paths]
    assert len(result.features) == 6 and result.n_computed == 6
    assert sorted(p for p, _ in result.failures) == sorted(bad)
    clean = featurizer.transform_paths(posters[:6])
    np.testing.assert_allclose(result.features, clean.features, atol=1e-6)
    if kind == "pixel_pca":
        assert sorted(p for p, _ in featurizer.fit_failures) == sorted(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_decoded_images_give_the_same_features_as_files(
    kind: str, tmp_path: Path, posters: list[str]
) -> None:
    """Train/serve consistency: serving hands decoded images, training hands paths."""
    featurizer = fitted(kind, tmp_path, posters)
    from_files = featurizer.transform_paths(posters).features
    decoded = [load_image(p) for p in posters]
    np.testing.assert_allclose(featurizer.transform_images(decoded), from_files, atol=1e-5)
    as_arrays = [np.asarray(im) for im in decoded]
    np.testing.assert_allclose(featurizer.transform_images(as_arrays), from_files, atol=1e-5)
    assert featurizer.transform_images([]).shape == (0, *featurizer.feature_shape)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.usefixtures("backbone_registry")
def test_save_load_roundtrip(kind: str, tmp_path: Path, posters: list[str]) -> None:
    featurizer = fitted(kind, tmp_path, posters)
    before = featurizer.transform_paths(posters).features
    featurizer.save(tmp_path / "saved")
    # Loading must not need the registry (nor network): hide every backbone.
    for name in available_backbones():
        unregister_backbone(name)
    loaded = load_featurizer(tmp_path / "saved")
    assert type(loaded) is type(featurizer) and loaded.params() == featurizer.params()
    assert loaded.summary() == featurizer.summary()
    if kind == "backbone":
        loaded.cache = False  # compute, do not read what the first run cached
    np.testing.assert_allclose(loaded.transform_paths(posters).features, before, atol=1e-6)
    np.testing.assert_allclose(
        loaded.transform_images([load_image(posters[0])]), before[:1], atol=1e-6
    )


def test_tampered_saved_featurizer_is_refused(tmp_path: Path, posters: list[str]) -> None:
    """Loading reads data only: no file, class or module is chosen by the saved JSON."""
    import pickle

    saved = tmp_path / "backbone"
    tiny(tmp_path).save(saved)
    spec = json.loads((saved / "featurizer.json").read_text())
    tampered = [
        ({**spec, "kind": "posterml.features.backbone:BackboneFeaturizer"}, "unknown"),
        ({**spec, "model_file": "../elsewhere.h5"}, "model_file must be"),
        (
            {**spec, "preprocessing": {"type": "import", "ref": "os:system"}},
            "'os:system' is saved as code to import",
        ),
        ({**spec, "format_version": True}, "unsupported featurizer format"),
    ]
    for changed, message in tampered:
        (saved / "featurizer.json").write_text(json.dumps(changed))
        with pytest.raises(ValueError, match=message):
            load_featurizer(saved)

    pca = PixelPCAFeaturizer((30, 20), n_components=4, batch_size=5, progress=False)
    pca.fit(posters).save(tmp_path / "pca")
    marker = tmp_path / "ran"
    (tmp_path / "pca" / "pca.npz").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ValueError, match=r"pca\.npz: not a plain \.npz archive"):
        load_featurizer(tmp_path / "pca")
    assert not marker.exists()


class _Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_backbone_params_and_lazy_tensorflow() -> None:
    params = BackboneFeaturizer(TINY).params()
    assert params["backbone"] == TINY and params["input_size"] == "32x24"
    # Cached features are only reused with the decoder that made them.
    assert BackboneFeaturizer(TINY).namespace.endswith(f"-dec{DECODER_VERSION}")
    code = (
        "import sys, posterml.features.loading; "
        "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_loading_a_kind_whose_module_was_not_imported_says_what_to_import(
    tmp_path: Path,
) -> None:
    """``base`` knows only the kinds imported so far; ``loading`` imports them all."""
    PixelFeaturizer((30, 20)).save(tmp_path)
    code = (
        "import sys\n"
        "from posterml.features.base import load_featurizer\n"
        "try:\n    load_featurizer(sys.argv[1])\n"
        "except ValueError as exc:\n    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "unknown featurizer kind 'pixels'" in run.stdout
    assert "posterml.features.loading" in run.stdout
    assert type(load_featurizer(tmp_path)) is PixelFeaturizer


def test_batch_norm_folding_keeps_outputs() -> None:
    model = _build_tiny()
    folded = fold_batch_norms(model)
    assert "bn" not in [layer.name for layer in folded.layers]
    x = np.random.default_rng(1).uniform(-1, 1, (3, *TINY_SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x), model(x), atol=1e-5)


def test_preprocessing_is_saved_as_data() -> None:
    x = np.random.default_rng(2).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    caffe = Preprocessing(mean=(103.939, 116.779, 123.68), channels="bgr")
    expected = x[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_array_equal(caffe(x), expected)
    for preprocessing in (TINY_PREPROCESSING, caffe):
        spec = json.loads(json.dumps(preprocessing.to_spec()))
        assert spec["type"] == "normalize"
        assert Preprocessing.from_spec(spec) == preprocessing
    # What older posterml saved (the affine maps it probed) reads back as the same numbers.
    legacy_caffe = {
        "type": "affine",
        "matrix": [[0.0, 0.0, 1.0000000299191942], [0.0, 1.0000000299191942, 0.0], [1.0, 0, 0]],
        "bias": [-103.93900299072266, -116.77899932861328, -123.68000030517578],
    }
    for spec, preprocessing in (
        (LEGACY_TINY_PREPROCESSING, TINY_PREPROCESSING),
        (legacy_caffe, caffe),
    ):
        np.testing.assert_allclose(Preprocessing.from_spec(spec)(x), preprocessing(x), atol=1e-4)
    grayscale = {"type": "affine", "matrix": [[1 / 3] * 3] * 3, "bias": [0.0] * 3}
    with pytest.raises(ValueError, match="not a per-channel normalisation"):
        Preprocessing.from_spec(grayscale)
    for bad in ({"mean": [1, 2]}, {"std": [1, 0, 1]}, {"channels": "rbg"}, {"mean": ["0", 0, 0]}):
        with pytest.raises(ValueError, match="preprocessing"):
            Preprocessing.from_spec({**TINY_PREPROCESSING.to_spec(), **bad})


def test_saved_preprocessing_never_names_code() -> None:
    """Older posterml could save a registered backbone's function by name; that is refused now
    (no registered backbone ever needed it), as is any other reference to code."""
    for ref in ("os:system", "builtins:eval", "numpy:sqrt"):
        with pytest.raises(ValueError, match="saved as code to import"):
            Preprocessing.from_spec({"type": "import", "ref": ref})
    with pytest.raises(ValueError, match="unknown preprocessing type"):
        Preprocessing.from_spec({"type": "eval", "ref": "numpy:sqrt"})


def test_featurizer_saved_before_preprocessing_was_data_still_loads(
    tmp_path: Path, posters: list[str]
) -> None:
    featurizer = tiny(tmp_path, cache=False)
    featurizer.save(tmp_path / "saved")
    spec_file = tmp_path / "saved" / "featurizer.json"
    spec = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**spec, "preprocessing": LEGACY_TINY_PREPROCESSING}))
    loaded = load_featurizer(tmp_path / "saved")
    assert loaded.preprocessing == TINY_PREPROCESSING
    images = [load_image(p) for p in posters[:3]]
    np.testing.assert_allclose(
        loaded.transform_images(images), featurizer.transform_images(images), atol=1e-6
    )


# --- pixel PCA --------------------------------------------------------------------------------


def test_pixel_pca_streams_in_bounded_batches(
    poster_paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.decomposition import PCA, IncrementalPCA

    seen: list[int] = []
    original = IncrementalPCA.partial_fit

    def spy(self, X, *args, **kwargs):
        seen.append(len(X))
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(IncrementalPCA, "partial_fit", spy)
    paths = poster_paths[:53]  # 53 = 2 * 24 + 5: the last decoded batch < n_components
    pca = PixelPCAFeaturizer((30, 20), n_components=8, batch_size=24, progress=False).fit(paths)
    assert sum(seen) == 53
    assert all(8 <= n <= 24 + 8 for n in seen)  # never the whole matrix, never too few rows
    ratio = pca.explained_variance_ratio_
    assert ratio.shape == (8,) and np.all(np.diff(ratio) <= 1e-12) and 0 < ratio.sum() <= 1
    assert pca.summary() == {"pca_explained_variance": pytest.approx(ratio.sum())}
    # Streaming loses little against an exact PCA on the full matrix.
    full = (
        np.stack(
            [np.asarray(load_image(p).convert("L").resize((20, 30), Image.BILINEAR)) for p in paths]
        ).reshape(53, -1)
        / 255.0
    )
    exact = PCA(8).fit(full).explained_variance_ratio_.sum()
    assert pca.summary()["pca_explained_variance"] == pytest.approx(exact, abs=0.03)
    assert pca.params() == {"featurizer": "pixel_pca", "input_size": "30x20", "pca_components": 8}


def test_pixel_pca_refuses_impossible_settings(posters: list[str]) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        PixelPCAFeaturizer(n_components=20, batch_size=10)
    with pytest.raises(ValueError, match="at least"):
        PixelPCAFeaturizer((30, 20), n_components=20, batch_size=32, progress=False).fit(posters)
    with pytest.raises(RuntimeError, match="fit"):
        PixelPCAFeaturizer().transform_paths(posters)
    assert PixelPCAFeaturizer().summary() == {}  # nothing learnt yet
    assert BackboneFeaturizer(TINY).summary() == {}  # nothing to learn


def test_pixels_are_uint8_rgb(posters: list[str]) -> None:
    result = PixelFeaturizer(progress=False).transform_paths(posters[:3])
    assert result.features.shape == (3, 96, 64, 3) and result.features.dtype == np.uint8
    assert PixelFeaturizer().params() == {"featurizer": "pixels", "input_size": "96x64"}

"""Saved classifiers are data, not code: exact round trips, tampered files refused.

A saved classifier is ``classifier.json`` + ``arrays.npz`` (+ ``network.keras`` for the Keras
families). Loading must never unpickle, import a module named on disk, or run a Lambda: the
tampered-file tests plant payloads that would create a marker file if anything executed them.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import toy_features
from model_fixture import CHAMPION_URI

from posterml.arrays import load_arrays
from posterml.classifiers.base import ARRAYS_FILE, META_FILE
from posterml.classifiers.classic import ClassicClassifier, ForestArrays
from posterml.classifiers.keras_models import MLPClassifier, ScratchCNNClassifier
from posterml.classifiers.loading import load_classifier, registered_kinds
from posterml.classifiers.nystroem import NystroemSVMClassifier
from posterml.classifiers.svm import RBFSVMClassifier

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib"}


def _toy(n: int = 240, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return toy_features(n, d, seed)


class Payload:
    """Unpickling this creates ``marker``: proof that a load ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def test_payload_is_live(tmp_path: Path) -> None:
    """The tampered-file tests mean something only if the payload does run when unpickled."""
    marker = tmp_path / "ran"
    pickle.loads(_payload_bytes(marker)).close()
    assert marker.exists()


# --- round trips ---------------------------------------------------------------------------

FITTED = {
    "logreg": lambda: ClassicClassifier("logreg", C=0.5, class_weight="balanced"),
    "knn": lambda: ClassicClassifier("knn", n_neighbors=7),
    "random_forest": lambda: ClassicClassifier("random_forest", n_estimators=30, seed=3),
    "random_forest_shallow": lambda: ClassicClassifier(
        "random_forest", n_estimators=10, max_depth=3, class_weight="balanced"
    ),
    "rbf_svm": lambda: RBFSVMClassifier(C=3.0, gamma_scale=0.7, class_weight="balanced"),
    "nystroem_svm": lambda: NystroemSVMClassifier(
        C=3.0, gamma_scale=0.7, class_weight="balanced", n_components=100, random_state=5
    ),
}


def _assert_plain_files(directory: Path, expected: set[str]) -> dict:
    """Only the expected files, none a pickle; returns the parsed classifier.json."""
    assert {p.name for p in directory.iterdir()} == expected
    for path in directory.iterdir():
        assert path.suffix not in PICKLE_SUFFIXES
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} is a pickle"
    load_arrays(directory / ARRAYS_FILE)  # readable without pickle
    return json.loads((directory / META_FILE).read_text())


@pytest.mark.parametrize("name", sorted(FITTED))
def test_classifier_round_trips_exactly(name: str, tmp_path: Path) -> None:
    X, Y = _toy()
    X_new = np.random.default_rng(1).normal(size=(50, X.shape[1])).astype(np.float32)
    model = FITTED[name]().fit(X, Y)
    before = model.predict_scores(X_new)
    model.save(tmp_path / "saved")
    meta = _assert_plain_files(tmp_path / "saved", {META_FILE, ARRAYS_FILE})
    assert meta["kind"] == type(model).saved_kind and meta["format_version"] == 1
    assert meta["params"] == json.loads(json.dumps(model.get_params()))

    loaded = load_classifier(tmp_path / "saved")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    np.testing.assert_allclose(loaded.predict_scores(X_new), before, rtol=0, atol=1e-12)
    loaded.save(tmp_path / "again")  # a loaded model saves again, to the same predictions
    again = load_classifier(tmp_path / "again").predict_scores(X_new)
    np.testing.assert_allclose(again, before, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["logreg", "knn", "random_forest"])
def test_classic_round_trip_with_a_single_learnable_genre(kind: str, tmp_path: Path) -> None:
    """One non-constant genre: sklearn returns a bare array, not a list, for multilabel."""
    X, Y = _toy()
    Y[:, [3, 6, 18]] = 0
    model = ClassicClassifier(kind, n_estimators=8).fit(X, Y)
    model.save(tmp_path)
    np.testing.assert_allclose(
        load_classifier(tmp_path).predict_scores(X), model.predict_scores(X), rtol=0, atol=1e-12
    )


def test_forest_arrays_match_sklearn_with_missing_values() -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, Y = _toy()
    X[::7, 2] = np.nan  # trees learn where missing values go
    forest = RandomForestClassifier(20, random_state=0).fit(X, Y[:, [0, 3, 6]])
    X_new = np.random.default_rng(2).normal(size=(40, X.shape[1])).astype(np.float32)
    X_new[::3, 2] = np.nan
    for got, want in zip(
        ForestArrays.from_sklearn(forest).predict_proba(X_new),
        forest.predict_proba(X_new),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_keras_classifiers_round_trip_as_plain_files(tmp_path: Path) -> None:
    X, Y = _toy(n=128)
    mlp = MLPClassifier(epochs=3, hidden=(16, 8), positive_weighting="sqrt").fit(X, Y)
    images = np.random.default_rng(0).integers(0, 255, (24, 24, 16, 3), dtype=np.uint8)
    cnn = ScratchCNNClassifier(epochs=1, filters=(4, 4, 4), dense_units=8).fit(images, Y[:24])
    for name, model, inputs in (("mlp", mlp, X), ("cnn", cnn, images)):
        model.save(tmp_path / name)
        meta = _assert_plain_files(tmp_path / name, {META_FILE, ARRAYS_FILE, "network.keras"})
        assert meta["fitted"] == {"epochs_trained_": model.epochs_trained_}
        loaded = load_classifier(tmp_path / name)
        assert loaded.get_params() == model.get_params()
        np.testing.assert_allclose(
            loaded.predict_scores(inputs), model.predict_scores(inputs), atol=1e-6
        )


@pytest.mark.slow
def test_keras_network_with_a_lambda_is_refused(tmp_path: Path) -> None:
    """safe_mode: a network.keras carrying Python code (a Lambda layer) does not load."""
    import keras

    X, Y = _toy(n=64)
    MLPClassifier(epochs=1, hidden=(4,)).fit(X, Y).save(tmp_path)
    marker = tmp_path / "ran"
    # No closure (Keras stores the lambda's bytecode): the marker path is a literal.
    function = eval(f"lambda x: x[:, :19] + 0.0 * len(open({str(marker)!r}, 'w').name)")
    inputs = keras.Input((X.shape[1],))
    outputs = keras.layers.Lambda(function)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "network.keras")
    marker.unlink(missing_ok=True)  # building the model traced the lambda once
    with pytest.raises(ValueError, match=r"(?is)classifier\.json: saved 'mlp'.*lambda"):
        load_classifier(tmp_path)
    assert not marker.exists()


# --- tampered files --------------------------------------------------------------------------


def _saved_svm(directory: Path) -> Path:
    X, Y = _toy(n=60)
    RBFSVMClassifier().fit(X, Y).save(directory)
    return directory


def test_old_joblib_classifier_is_refused_unopened(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "classifier.joblib").write_bytes(_payload_bytes(marker))
    (tmp_path / META_FILE).write_text(json.dumps({"format": "joblib"}))
    with pytest.raises(
        ValueError, match=r"classifier\.json: a classifier saved by an older posterml"
    ):
        load_classifier(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os:system", "posterml.classifiers.keras_models:MLPClassifier"])
def test_old_keras_state_naming_any_class_is_refused(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "state.joblib").write_bytes(_payload_bytes(marker))
    (tmp_path / META_FILE).write_text(json.dumps({"format": "keras", "class": name}))
    with pytest.raises(
        ValueError, match=r"classifier\.json: a classifier saved by an older posterml"
    ):
        load_classifier(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "kind", ["os:system", "posterml.classifiers.svm:RBFSVMClassifier", None, 3]
)
def test_unknown_kind_is_refused(kind: object, tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    (directory / META_FILE).write_text(json.dumps({**meta, "kind": kind, "class": "os:system"}))
    with pytest.raises(ValueError, match=r"classifier\.json: unknown classifier kind"):
        load_classifier(directory)


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_other_format_version_is_refused(version: object, tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    (directory / META_FILE).write_text(json.dumps({**meta, "format_version": version}))
    with pytest.raises(ValueError, match=r"classifier\.json: 'rbf_svm' classifier in format"):
        load_classifier(directory)


def test_unexpected_hyperparameters_are_refused(tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    meta["params"]["distance_cache"] = "os:system"
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"unknown: \['distance_cache'\]"):
        load_classifier(directory)


def test_pickle_in_place_of_the_arrays_is_refused(tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path / "model")
    marker = tmp_path / "ran"
    (directory / ARRAYS_FILE).write_bytes(_payload_bytes(marker))
    with pytest.raises(ValueError, match=r"arrays\.npz: not a plain \.npz archive"):
        load_classifier(directory)
    assert not marker.exists()


def test_object_array_in_the_npz_is_refused(tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path / "model")
    marker = tmp_path / "ran"
    arrays = dict(np.load(directory / ARRAYS_FILE))
    arrays["duals"] = np.array([Payload(marker)], dtype=object)
    np.savez(directory / ARRAYS_FILE, allow_pickle=True, **arrays)
    with pytest.raises(ValueError, match=r"arrays\.npz: array 'duals' holds Python objects"):
        load_classifier(directory)
    assert not marker.exists()


def test_inconsistent_arrays_are_a_clear_error(tmp_path: Path) -> None:
    directory = _saved_svm(tmp_path)
    arrays = dict(np.load(directory / ARRAYS_FILE))
    arrays["dual_offsets"] = arrays["dual_offsets"][::-1]
    del arrays["gamma"]
    np.savez(directory / ARRAYS_FILE, **arrays)
    with pytest.raises(ValueError, match=r"classifier\.json: saved 'rbf_svm' classifier lacks"):
        load_classifier(directory)
    arrays["gamma"] = np.float32(0.1)
    np.savez(directory / ARRAYS_FILE, **arrays)
    with pytest.raises(ValueError, match=r"unusable: duals: offsets"):
        load_classifier(directory)


def test_nystroem_arrays_that_disagree_are_refused(tmp_path: Path) -> None:
    X, Y = _toy(n=80)
    FITTED["nystroem_svm"]().fit(X, Y).save(tmp_path)
    arrays = dict(np.load(tmp_path / ARRAYS_FILE))
    arrays["normalisation"] = arrays["normalisation"][:-1]
    np.savez(tmp_path / ARRAYS_FILE, **arrays)
    with pytest.raises(ValueError, match="disagree on the number of landmarks"):
        load_classifier(tmp_path)


def test_forest_with_a_cycle_is_refused(tmp_path: Path) -> None:
    """A tampered tree must not make prediction loop forever."""
    X, Y = _toy(n=60)
    ClassicClassifier("random_forest", n_estimators=3).fit(X, Y).save(tmp_path)
    arrays = dict(np.load(tmp_path / ARRAYS_FILE))
    arrays["tree_left"][1] = 0  # node 1 (internal at depth 1) points back to the root
    np.savez(tmp_path / ARRAYS_FILE, **arrays)
    with pytest.raises(ValueError, match="not after its parent"):
        load_classifier(tmp_path)


def test_ensemble_round_trips_with_its_members_as_plain_files(tmp_path: Path) -> None:
    from posterml.classifiers.ensemble import EnsembleClassifier

    X, Y = _toy()
    X_new = np.random.default_rng(2).normal(size=(30, X.shape[1])).astype(np.float32)
    members = [FITTED["rbf_svm"](), FITTED["logreg"]()]
    model = EnsembleClassifier(members, [0.7, 0.3]).fit(X, Y)
    before = model.predict_scores(X_new)
    # The blend lies between its members (scores are clipped at 1e-6 before the logit).
    svm, logreg = (np.clip(m.predict_scores(X_new), 1e-6, 1 - 1e-6) for m in members)
    assert np.all(before <= np.maximum(svm, logreg) + 1e-9)
    assert np.all(before >= np.minimum(svm, logreg) - 1e-9)
    model.save(tmp_path / "saved")
    assert_no_pickles(tmp_path / "saved")
    assert (tmp_path / "saved" / "member_1" / META_FILE).is_file()
    loaded = load_classifier(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_scores(X_new), before, rtol=0, atol=1e-12)


def test_every_registered_kind_is_a_known_family(tmp_path: Path) -> None:
    assert registered_kinds() == [
        "classic",
        "ensemble",
        "finetune_top",
        "mlp",
        "nystroem_svm",
        "rbf_svm",
        "scratch_cnn",
        "tfidf_logistic",
    ]

    class Unregistered(RBFSVMClassifier):
        pass

    X, Y = _toy(n=40)
    with pytest.raises(TypeError, match="Unregistered cannot be saved"):
        Unregistered().fit(X, Y).save(tmp_path)  # would otherwise load back as an rbf_svm


def test_loading_a_kind_whose_module_was_not_imported_says_what_to_import(
    tmp_path: Path,
) -> None:
    """``base`` knows only the kinds imported so far; ``loading`` imports every family."""
    X, Y = _toy(n=40)
    ClassicClassifier("logreg").fit(X, Y).save(tmp_path)
    code = (
        "import sys\n"
        "from posterml.classifiers.base import load_classifier\n"
        "try:\n    load_classifier(sys.argv[1])\n"
        "except ValueError as exc:\n    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "unknown classifier kind 'classic'" in run.stdout
    assert "posterml.classifiers.loading" in run.stdout
    assert type(load_classifier(tmp_path)) is ClassicClassifier


def test_models_package_neither_pickles_nor_imports_by_name() -> None:
    root = Path(__file__).resolve().parents[1] / "posterml" / "classifiers"
    banned = ("joblib", "import pickle", "allow_pickle=True", "import_module", "safe_mode=False")
    for path in root.glob("*.py"):
        text = path.read_text()
        for word in (*banned, "Lambda("):
            assert word not in text, f"{path.name} uses {word}"


# --- a whole saved pipeline --------------------------------------------------------------------


def assert_no_pickles(root: Path) -> list[str]:
    """Walk ``root``: no pickle-named file, none starting with the pickle protocol byte, every
    ``.npz`` readable without pickle and no zip member (``.keras``) a pickle. Returns the
    relative paths seen."""
    import zipfile

    seen = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        seen.append(path.relative_to(root).as_posix())
        assert path.suffix not in PICKLE_SUFFIXES, path
        assert not path.read_bytes().startswith(b"\x80"), f"{path} is a pickle"
        if path.suffix == ".npz":
            load_arrays(path)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    assert Path(member).suffix not in PICKLE_SUFFIXES, (path, member)
                    assert not archive.read(member).startswith(b"\x80"), (path, member)
    return seen


def _pipeline_inputs(tmp_path: Path, n: int = 12) -> tuple[list[str], np.ndarray]:
    from helpers import write_image

    paths = [str(write_image(tmp_path / "posters" / f"p{i}.jpg", seed=i)) for i in range(n)]
    Y = np.zeros((n, 19), np.uint8)
    Y[::2, 0] = 1
    Y[1::3, 6] = 1
    return paths, Y


@pytest.mark.parametrize("name", ["logreg", "knn", "random_forest", "rbf_svm"])
def test_saved_pipeline_holds_no_pickle(name: str, tmp_path: Path) -> None:
    from posterml.data.images import load_image
    from posterml.evaluation.decision import DecisionLayer
    from posterml.features.pixels import PixelPCAFeaturizer
    from posterml.serving.pyfunc import PosterPipeline

    paths, Y = _pipeline_inputs(tmp_path)
    featurizer = PixelPCAFeaturizer((30, 20), n_components=4, batch_size=5, progress=False)
    X = featurizer.fit(paths).transform_paths(paths).features
    model = {**FITTED, "knn": lambda: ClassicClassifier("knn", n_neighbors=3)}[name]()
    model.fit(X, Y)
    layer = DecisionLayer().fit(model.predict_scores(X), Y)
    pipeline = PosterPipeline(featurizer, model, layer, {"family": name})
    pipeline.save(tmp_path / "pipeline")

    seen = assert_no_pickles(tmp_path / "pipeline")
    assert "classifier/arrays.npz" in seen and "featurizer/pca.npz" in seen
    images = [load_image(p) for p in paths[:4]]
    loaded = PosterPipeline.load(tmp_path / "pipeline")
    np.testing.assert_allclose(loaded.scores(images), pipeline.scores(images), rtol=0, atol=1e-12)


@pytest.mark.slow
def test_saved_keras_pipeline_holds_no_pickle(tmp_path: Path) -> None:
    from posterml.data.images import load_image
    from posterml.evaluation.decision import DecisionLayer
    from posterml.features.pixels import PixelFeaturizer
    from posterml.serving.pyfunc import PosterPipeline

    paths, Y = _pipeline_inputs(tmp_path)
    featurizer = PixelFeaturizer((24, 16), progress=False)
    model = ScratchCNNClassifier(epochs=1, filters=(4, 4, 4), dense_units=8)
    X = featurizer.transform_paths(paths).features
    model.fit(X, Y)
    layer = DecisionLayer().fit(model.predict_scores(X), Y)
    pipeline = PosterPipeline(featurizer, model, layer, {"family": "scratch_cnn"})
    pipeline.save(tmp_path / "pipeline")

    assert "classifier/network.keras" in assert_no_pickles(tmp_path / "pipeline")
    images = [load_image(p) for p in paths[:4]]
    loaded = PosterPipeline.load(tmp_path / "pipeline")
    np.testing.assert_allclose(loaded.scores(images), pipeline.scores(images), atol=1e-6)


@pytest.mark.slow
@pytest.mark.usefixtures("model_store")  # the session's tiny registered model, trained once
def test_registered_model_holds_no_pickle(tmp_path: Path) -> None:
    """What ``mlflow models serve`` and ``posterml predict`` download: no pickle anywhere."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(CHAMPION_URI, dst_path=str(tmp_path)))
    seen = assert_no_pickles(local)
    assert "artifacts/pipeline/classifier/classifier.json" in seen and "MLmodel" in seen


@pytest.mark.slow
@pytest.mark.usefixtures("model_store")
def test_the_input_example_is_generated_not_a_poster(tmp_path: Path) -> None:
    """No real poster in any artifact: the input example is drawn, not read from data."""
    import mlflow

    from posterml.serving.pyfunc import example_poster

    local = Path(mlflow.artifacts.download_artifacts(CHAMPION_URI, dst_path=str(tmp_path)))
    examples = [p for p in local.rglob("*example*.json")]
    assert examples
    for path in examples:
        text = path.read_text()
        assert example_poster() in text
        assert len(text) < 6000


@pytest.mark.slow
def test_finetuned_top_round_trips_as_plain_files(tmp_path: Path) -> None:
    """The fine-tuned top of Lite0 (a nested Keras model with augmentation layers) saves as
    a safe-mode .keras file and predicts the same after loading."""
    from posterml.classifiers.finetune import FineTunedTopClassifier

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 6, size=(48, 7, 7, 192)).astype(np.float32)
    Y = (rng.random((48, 19)) < 0.3).astype(np.uint8)
    model = FineTunedTopClassifier(epochs=1, batch_size=16, loss="asymmetric")
    model.fit(X[:40], Y[:40], X[40:], Y[40:])
    before = model.predict_scores(X[40:])
    model.save(tmp_path / "saved")
    assert "network.keras" in assert_no_pickles(tmp_path / "saved")
    loaded = load_classifier(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_scores(X[40:]), before, atol=1e-6)

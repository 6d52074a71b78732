"""Which representation should the recipe learn posters from?

    python -m research.representations --data ../shared/posters [--parts concat,knn,finetune]
    python -m research.representations --smoke   # seconds: synthetic set, small pixels

Every variant is trained on the recipe's split (``main``'s: seed 42, 70/20/10 of every decade)
and decides through the recipe's decision layer, so only the representation or head differs:

* ``lite0``: the recipe's model, Lite0 features + balanced RBF SVM; C and gamma_scale from a
  small grid on val, then 5-fold out-of-fold scores over train+val for the decision layer;
* ``concat``: the same on Lite0 + Lite1 + Lite2 features side by side (each block scaled to
  unit variance; the Lite1/2 weight packages must be importable, see ``research.backbones``);
* ``knn``: a neighbours head on Lite0 features (cosine, similarity-weighted votes of the ``k``
  nearest train posters), alone, and in place of the SVM for the genres on fewer than
  ``--rare-share`` of the train posters;
* ``finetune``: every layer of EfficientNet-Lite0 trained on posters (224 px; flips, shifts,
  brightness and contrast jitter; asymmetric loss; the head started from a fit on cached
  features), early stopping on val F1; its decision layer learns from val scores (5 folds
  would cost five trainings).

Each row gives test micro/macro/weighted F1, the two tiers' verdicts (``research._tier_report``),
CPU minutes (``time.process_time``, all threads) with the CPU kind, and its difference from
the SVM decided from the same data (the recipe; for the fine-tune, the SVM whose decision
layer also learns from val) with a 95% paired bootstrap interval over the test posters. Runs
are logged to the experiment ``benchmark-representations`` in $MLFLOW_TRACKING_URI (smoke: a
throwaway store).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS, SVM_GRID, cpu_kind
from posterml.evaluation.decision import cross_fit_predict
from posterml.evaluation.metrics import tier_report_frame
from posterml.modeling.cli import experiment_config
from posterml.modeling.families import get_family
from posterml.modeling.fitting import decision_layer, fit_classifier, out_of_fold_scores
from posterml.modeling.inputs import FeatureSets, build_features, load_data
from posterml.modeling.settings import ExperimentConfig
from research._tier_report import shown, verdicts

DEFAULT_DATA = SHARED_POSTERS
EXPERIMENT = "benchmark-representations"
PARTS = ("concat", "knn", "finetune")  # the recipe's Lite0 SVM always runs
CONCAT = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
GRID = dict(SVM_GRID)  # a smoke run narrows it
BOOTSTRAP = 500  # resamples of the test posters for each difference from the recipe


@dataclass
class Result:
    name: str
    Y: np.ndarray
    genres: np.ndarray
    maybe: np.ndarray
    cpu_s: float
    note: str = ""

    def row(self) -> dict:
        f1 = {
            f"test_f1_{a}": f1_score(self.Y, self.genres, average=a, zero_division=0)
            for a in ("micro", "macro", "weighted")
        }
        table = shown(tier_report_frame(self.Y, self.genres, self.maybe))
        metrics = {**f1, "test_maybe_per_poster": float(self.maybe.sum(1).mean())}
        return {
            "variant": self.name,
            **f1,
            "genres_per_poster": float(self.genres.sum(1).mean()),
            "maybe_per_poster": metrics["test_maybe_per_poster"],
            "imprecise": int((table["precision"] < 0.30).sum()),
            "found_under_half": int((table["found"] < 0.5).sum()),
            "cpu_min": self.cpu_s / 60,
            "note": self.note,
            "verdicts": verdicts(table, metrics),
        }


# --------------------------------------------------------------------------- heads
@dataclass
class Scores:
    """A head's scores: out-of-fold over train+val (what the decision layer learns from)
    and on test."""

    dev: np.ndarray
    test: np.ndarray


def dev_split(features: FeatureSets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train+val features, labels and years: where the decision layer learns."""
    return tuple(
        np.concatenate([part["train"], part["val"]])
        for part in (features.X, features.Y, features.years)
    )


def decided(
    name: str,
    scores: Scores,
    features: FeatureSets,
    config: ExperimentConfig,
    cpu: float,
    dev_is_val: bool = False,
) -> Result:
    """The recipe's decision layer fitted on ``scores.dev`` (train+val, or val only with
    ``dev_is_val``), deciding test; ``cpu`` is when the variant's clock started."""
    _, Y_dev, years_dev = dev_split(features)
    if dev_is_val:
        Y_dev, years_dev = features.Y["val"], features.years["val"]
    layer = decision_layer(config).fit(scores.dev, Y_dev, years_dev)
    _, genres, maybe = layer.predict_tiers(scores.test)
    return Result(name, features.Y["test"], genres, maybe, time.process_time() - cpu)


def svm_grid(features: FeatureSets, config: ExperimentConfig) -> dict:
    """C and gamma_scale of the balanced SVM: best val weighted F1 over ``GRID``, each val
    decision cross-fitted as in a search trial."""
    family = get_family("resnet_svm", config.options)
    X, Y = features.X, features.Y
    best, best_f1 = {}, -1.0
    for C in GRID["C"]:
        for gamma_scale in GRID["gamma_scale"]:
            params = {"C": C, "gamma_scale": gamma_scale, "class_weight": "balanced"}
            model = fit_classifier(family, params, config.seed, X["train"], Y["train"])
            layer = decision_layer(config)
            _, pred, _ = cross_fit_predict(
                layer, model.predict_scores(X["val"]), Y["val"], seed=config.seed
            )
            f1 = f1_score(Y["val"], pred, average="weighted", zero_division=0)
            print(f"    C {C}, gamma_scale {gamma_scale}: val weighted F1 {f1:.3f}", flush=True)
            if f1 > best_f1:
                best, best_f1 = params, f1
    return best


def svm_scores(
    features: FeatureSets, config: ExperimentConfig, params: dict | None = None
) -> tuple[Scores, Scores, dict]:
    """The recipe's SVM (``fit_and_decide`` with folds): grid (unless ``params``),
    out-of-fold dev scores, refit on train+val. Also, for the fine-tune's sake, the same SVM
    fitted on train alone with val as its dev set."""
    params = params or svm_grid(features, config)
    family = get_family("resnet_svm", config.options)
    on_train = fit_classifier(family, params, config.seed, features.X["train"], features.Y["train"])
    val_dev = Scores(
        on_train.predict_scores(features.X["val"]), on_train.predict_scores(features.X["test"])
    )
    X_dev, Y_dev, _ = dev_split(features)
    dev = out_of_fold_scores(family, params, config, X_dev, Y_dev)
    classifier = fit_classifier(family, params, config.seed, X_dev, Y_dev)
    test = classifier.predict_scores(features.X["test"])
    return Scores(dev, test), val_dev, params


def concatenated(sets: list[FeatureSets]) -> FeatureSets:
    """Feature blocks side by side, each scaled by its train standard deviation (an RBF
    kernel would otherwise listen to the block with the largest values)."""
    first = sets[0]
    for other in sets[1:]:
        for split in first.ids:
            if not np.array_equal(first.ids[split], other.ids[split]):
                raise ValueError(f"backbones decoded different posters in {split}")
    scaled = [(s, float(s.X["train"].std()) or 1.0) for s in sets]
    X = {split: np.concatenate([s.X[split] / sd for s, sd in scaled], axis=1) for split in first.X}
    return replace(first, X=X)


class NeighboursHead:
    """Similarity-weighted genre votes of the ``k`` nearest train posters (cosine)."""

    def __init__(self, k: int = 25, temperature: float = 0.05) -> None:
        self.k = k
        self.temperature = temperature

    def fit(self, X: np.ndarray, Y: np.ndarray) -> NeighboursHead:
        self.X_ = _unit(X)
        self.Y_ = Y.astype(np.float64)
        return self

    def scores(self, X: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Vote shares in (0, 1); ``exclude_self``: ``X`` is the fitted set, each poster's
        own vote left out (leave-one-out scores)."""
        similarity = _unit(X) @ self.X_.T
        if exclude_self:
            np.fill_diagonal(similarity, -np.inf)
        k = min(self.k, self.X_.shape[0] - int(exclude_self))
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(similarity, nearest, axis=1)
        w = np.exp((s - s.max(1, keepdims=True)) / self.temperature)
        votes = np.einsum("nk,nkg->ng", w, self.Y_[nearest]) / w.sum(1, keepdims=True)
        return np.clip(votes, 1e-4, 1 - 1e-4)


def _unit(X: np.ndarray) -> np.ndarray:
    X = X - X.mean(1, keepdims=True)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def knn_scores(features: FeatureSets, k: int) -> Scores:
    """The neighbours head: leave-one-out scores over train+val, test voted by train+val."""
    X_dev, Y_dev, _ = dev_split(features)
    head = NeighboursHead(k=k).fit(X_dev, Y_dev)
    return Scores(head.scores(X_dev, exclude_self=True), head.scores(features.X["test"]))


def rare_swapped(svm: Scores, knn: Scores, Y_train: np.ndarray, share: float) -> tuple[Scores, str]:
    """The SVM's scores with the neighbours' in place for genres on under ``share`` of the
    train posters (the decision layer calibrates each genre apart, so columns may mix)."""
    swap = Y_train.mean(0) < share
    mixed = Scores(np.where(swap, knn.dev, svm.dev), np.where(swap, knn.test, svm.test))
    return mixed, f"knn for the {int(swap.sum())} genres on < {share:.0%} of train posters"


def paired_difference(
    result: Result, reference: Result, average: str, seed: int
) -> tuple[float, float, float]:
    """``result`` minus ``reference`` in F1 (``average``) on the same test posters, with a
    95% paired bootstrap interval: is a difference more than the test set's noise?"""
    rng = np.random.default_rng(seed)
    n = len(result.Y)

    def f1(r: Result, rows) -> float:
        return f1_score(r.Y[rows], r.genres[rows], average=average, zero_division=0)

    every = np.arange(n)
    draws = [rng.integers(0, n, n) for _ in range(BOOTSTRAP)]
    diffs = [f1(result, rows) - f1(reference, rows) for rows in draws]
    low, high = np.percentile(diffs, [2.5, 97.5])
    return f1(result, every) - f1(reference, every), float(low), float(high)


# --------------------------------------------------------------------------- fine-tuning
def decoded(dataset, ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) posters of ``ids``, through the one decoder."""
    from posterml.features.image_stream import iter_image_batches

    by_id = dataset.frame.set_index("poster_id")["image"]
    out = np.zeros((len(ids), *size, 3), np.uint8)
    failures: list = []
    paths = [by_id[i] for i in ids]
    for index, pixels in iter_image_batches(paths, size, progress=False, failures=failures):
        out[index] = pixels
    if failures:  # features.ids holds only posters that decoded once already
        raise RuntimeError(f"{len(failures)} posters no longer decode: {failures[:3]}")
    return out


def whole_network(backbone: str, n_genres: int, dropout: float):
    """Pixels (0-255 floats) -> augmentation -> Lite's scaling -> every layer of the
    backbone, trainable -> dropout -> sigmoid genres."""
    import keras
    from keras import layers

    from posterml.features.backbone import BackboneFeaturizer

    featurizer = BackboneFeaturizer(backbone, progress=False)
    probe = np.array([[[[0, 127, 255]]]], np.uint8)
    if not np.allclose(featurizer.preprocessing(probe), (probe - 127.0) / 128.0):
        raise ValueError(f"{backbone}: not Lite's (x - 127) / 128 scaling")
    trunk = featurizer.model
    trunk.trainable = True
    inputs = keras.Input((*featurizer.input_size, 3), name="pixels")
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomTranslation(0.08, 0.08, fill_mode="nearest")(x)
    x = layers.RandomBrightness(0.15, value_range=(0, 255))(x)
    x = layers.RandomContrast(0.15, value_range=(0, 255))(x)
    x = layers.Rescaling(1 / 128, offset=-127 / 128)(x)
    x = layers.Dropout(dropout)(trunk(x))
    outputs = layers.Dense(n_genres, activation="sigmoid", name="genres")(x)
    return keras.Model(inputs, outputs), featurizer.input_size


def head_from_features(X: np.ndarray, Y: np.ndarray, seed: int) -> list[np.ndarray]:
    """Dense sigmoid weights fitted on cached pooled features: the whole network then
    starts from a sensible head instead of a random one."""
    import keras

    from posterml.classifiers.finetune import asymmetric_loss

    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(Y.shape[1], "sigmoid")])
    head.compile(keras.optimizers.Adam(1e-3), asymmetric_loss())
    head.fit(X, Y.astype(np.float32), epochs=40, batch_size=64, verbose=0)
    return head.layers[-1].get_weights()


def finetune_scores(dataset, features: FeatureSets, args: argparse.Namespace) -> tuple[Scores, str]:
    """Every layer of the backbone trained on train posters, early stopping on val F1;
    scores on val (the decision layer's dev set) and test."""
    import keras
    import tensorflow as tf

    from posterml.classifiers.finetune import asymmetric_loss, best_cut_f1

    Y_train, Y_val = features.Y["train"].astype(np.float32), features.Y["val"]
    model, size = whole_network(args.finetune_backbone, Y_train.shape[1], dropout=0.2)
    model.get_layer("genres").set_weights(
        head_from_features(features.X["train"], Y_train, args.seed)
    )
    pixels = {s: decoded(dataset, features.ids[s], size) for s in ("train", "val", "test")}
    steps = int(np.ceil(len(Y_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps * args.epochs)
    model.compile(keras.optimizers.Adam(schedule), asymmetric_loss())
    call = tf.function(lambda x: model(x, training=False))

    def predict(images: np.ndarray) -> np.ndarray:
        batches = [call(images[i : i + 64].astype(np.float32)) for i in range(0, len(images), 64)]
        return np.concatenate([np.asarray(b) for b in batches])

    rng = np.random.default_rng(args.seed)
    best, best_weights, waited, epochs = -1.0, model.get_weights(), 0, 0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(Y_train))
        for i in range(0, len(order), args.batch_size):
            rows = np.sort(order[i : i + args.batch_size])
            loss = model.train_on_batch(pixels["train"][rows].astype(np.float32), Y_train[rows])
        f1 = best_cut_f1(Y_val, predict(pixels["val"]))
        epochs = epoch + 1
        print(
            f"    epoch {epochs}: loss {float(np.asarray(loss)):.4f}, val F1 (best cuts) "
            f"{f1:.3f}, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        if f1 > best:
            best, best_weights, waited = f1, model.get_weights(), 0
        else:
            waited += 1
            if waited >= args.patience:
                break
    model.set_weights(best_weights)
    note = f"{epochs} epochs, best val F1 (best cuts) {best:.3f}; layer on val"
    return Scores(predict(pixels["val"]), predict(pixels["test"])), note


# --------------------------------------------------------------------------- the run
def features_for(backbone: str, config: ExperimentConfig, dataset, splits) -> FeatureSets:
    from research.backbones import ensure_registered

    ensure_registered(backbone)
    family = get_family("resnet_svm", config.replace(backbone=backbone).options)
    return build_features(family, dataset, splits)


def run(args: argparse.Namespace) -> pd.DataFrame:
    config = experiment_config(
        "resnet_svm",
        data=str(args.data),
        backbone="efficientnet_lite0",
        class_weight="balanced",
        seed=args.seed,
        max_posters=args.max_posters,
    )
    dataset, splits = load_data(config)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; choose from {PARTS}")
    cpu = time.process_time()
    lite0 = build_features(get_family("resnet_svm", config.options), dataset, splits)
    print(f"{sum(len(y) for y in lite0.Y.values())} posters, {len(lite0.Y['test'])} on test")
    results: list[Result] = []
    print("lite0 svm:", flush=True)
    svm, svm_on_train, params = svm_scores(lite0, config)
    results.append(decided("lite0 svm (recipe)", svm, lite0, config, cpu))
    results[-1].note = f"C {params['C']}, gamma_scale {params['gamma_scale']}"
    results.append(decided("lite0 svm, layer on val", svm_on_train, lite0, config, cpu, True))
    if "concat" in parts:
        cpu = time.process_time()
        names = [n.strip() for n in args.concat.split(",")]
        try:
            sets = [features_for(name, config, dataset, splits) for name in names]
        except Exception as error:  # a Lite1/2 weight package not installed here
            print(f"concat skipped: {type(error).__name__}: {error}")
        else:
            print(f"{' + '.join(names)} svm:", flush=True)
            joined = concatenated(sets)
            scores, _, p = svm_scores(joined, config)
            results.append(decided(" + ".join(n[-5:] for n in names), scores, joined, config, cpu))
            results[-1].note = f"C {p['C']}, gamma_scale {p['gamma_scale']}"
    if "knn" in parts:
        cpu = time.process_time()
        knn = knn_scores(lite0, args.k)
        results.append(decided(f"lite0 knn (k {args.k})", knn, lite0, config, cpu))
        mixed, note = rare_swapped(svm, knn, lite0.Y["train"], args.rare_share)
        results.append(decided("lite0 svm + knn for rare", mixed, lite0, config, cpu))
        results[-1].note = note
    if "finetune" in parts:
        cpu = time.process_time()
        print(f"{args.finetune_backbone}, every layer trained:", flush=True)
        scores, note = finetune_scores(dataset, lite0, args)
        results.append(decided("lite0 fine-tuned", scores, lite0, config, cpu, True))
        results[-1].note = note
    rows = [r.row() for r in results]
    for row, result in zip(rows, results, strict=True):
        reference = results[1] if "layer on val" in result.name else results[0]
        if result is reference or result is results[1]:
            continue
        for average in ("micro", "weighted"):
            diff, low, high = paired_difference(result, reference, average, args.seed)
            row[f"{average}_vs_svm"] = f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
    for row in rows:
        print(f"\n{row['variant']} ({row['note']}):")
        for line in row.pop("verdicts"):
            print(f"  {line}")
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame):
    """Test F1 (micro, macro, weighted) of each variant, side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 0.5 + 0.45 * len(table)), layout="constrained")
    ax = fig.add_subplot()
    rows = np.arange(len(table))[::-1]
    for k, average in enumerate(("micro", "macro", "weighted")):
        values = table[f"test_f1_{average}"].to_numpy(dtype=float)
        ax.barh(rows + (k - 1) * 0.27, values, height=0.27, label=average)
    ax.set_yticks(rows, table["variant"])
    ax.set_xlabel("test F1 (the recipe's split, same decision layer)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def log_to_mlflow(table: pd.DataFrame, args: argparse.Namespace, path: Path) -> None:
    import mlflow

    from posterml.tracking import configure_tracking

    if not args.smoke:  # a smoke run's throwaway store is already active
        configure_tracking()
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="representations"):
        mlflow.log_params({k: v for k, v in vars(args).items() if k != "smoke"})
        mlflow.set_tag("cpu_kind", cpu_kind())
        for _, row in table.iterrows():
            key = "".join(c if c.isalnum() else "_" for c in row["variant"]).strip("_")
            for column in ("test_f1_micro", "test_f1_macro", "test_f1_weighted", "cpu_min"):
                mlflow.log_metric(f"{key}_{column}", float(row[column]))
        mlflow.log_artifact(str(path))
        mlflow.log_figure(figure(table), "representations.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {PARTS}")
    parser.add_argument("--concat", default=",".join(CONCAT), help="backbones side by side")
    parser.add_argument("--k", type=int, default=25, help="neighbours that vote")
    parser.add_argument(
        "--rare-share", type=float, default=0.05, help="knn for genres on fewer train posters"
    )
    parser.add_argument("--finetune-backbone", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-posters", type=int, default=0, help="0: all")
    parser.add_argument("--out", default="", help="CSV of the table (default: a temp file)")
    return _smoke.parse_args(
        parser,
        argv,
        data="synthetic",
        max_posters=120,
        epochs=1,
        concat="efficientnet_lite0,efficientnet_lite0",
        k=5,
    )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.smoke:
        GRID.update(C=(1.0,), gamma_scale=(1.0,))
        globals()["BOOTSTRAP"] = 20
    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores", flush=True)
    table = run(args)
    shown = table.drop(columns=[c for c in table.columns if c == "note" or c.endswith("_vs_svm")])
    print(f"\n{shown.to_string(index=False, float_format='{:.3f}'.format)}")
    print("\nDifferences from the SVM with the same decision data (95% paired bootstrap):")
    columns = [c for c in table.columns if c.endswith("_vs_svm")]
    print(table[["variant", *columns]].fillna("").to_string(index=False))
    with tempfile.TemporaryDirectory(prefix="posterml-representations-") as folder:
        path = Path(args.out) if args.out else Path(folder) / "representations.csv"
        table.to_csv(path, index=False)
        if args.smoke:
            with _smoke.scratch_store(EXPERIMENT):
                log_to_mlflow(table, args, path)
        else:
            log_to_mlflow(table, args, path)
    return table


if __name__ == "__main__":
    main()

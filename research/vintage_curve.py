"""The modern-to-vintage answer as a curve: how many labelled vintage posters a model trained
on modern ones needs, which to label first, and how to train on them.

    python -m research.vintage_curve --data ../shared/posters [--seeds 0,1,2,3,4] \\
        [--steps 25,50,100,200,400,all] [--out outputs/vintage-curve]
    python -m research.vintage_curve --smoke     # seconds, on the synthetic set

The posters are split once (``--split-seed``), multilabel-stratified:

* **vintage reference**: 30% of the posters from before 1980, scored at every step and
  never trained on;
* **vintage pool**: the other 70%, fed in at the ``--steps`` (cumulative counts; ``all``
  is the whole pool);
* **modern test**: 10% of the posters from 1980 on, scored at every step, never trained on
  (modern F1 must not drop as vintage posters come in);
* **modern train**: the rest from 1980 on, in every training set.

The model is the recipe's (Lite0 features, balanced RBF SVMs, the decision layer fitted on
``--cv-folds`` out-of-fold scores, ``posterml.modeling.fitting``) with C and gamma fixed
at ``PARAMS`` instead of an Optuna search per fit, so the curve is affordable; ``--tune``
only re-runs the small grid that chose them (on modern train only, 80/20) and prints it.

Which vintage posters come in: (a) **random**, one nested sequence per ``--seeds`` seed;
(b) **priority D**: the top of ``posterml.evaluation.priority.review_priority`` (diversity D,
one sequence per ``--diversity`` value) on what is left of the pool, ranked with the current
pooled model's probabilities and thresholds at every step.

How they are trained on, at every step:

* **pooled**: one model on modern train + the vintage posters added;
* **weighted**: the same, with each vintage poster's C scaled by ``--vintage-weight``
  (``sample_weight`` in the SVM);
* **separate**: the study's "a model per period": the modern model (modern train alone)
  decides posters from 1980 on, a model trained on the added vintage posters alone decides
  earlier ones. Below ``--min-separate`` added posters that model would learn from too
  few (most genres would have no positive at all, and every genre under the decision
  layer's 15 positives keeps a 0.5 cut): vintage posters then go to the modern model,
  and the table marks the row ``*``.

Printed: a table of vintage (reference) and modern (test) micro and samples F1 per step,
selection and way, "Drama + Comedy for everyone" beside them (random: mean over seeds),
then priority minus random per step. Written to ``--out``: the figure and the table (CSV).
Logged to MLflow ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db), experiment
``benchmark-vintage-curve``: one run, curves as metrics whose step is the number of
vintage posters added, the figure and the table as artifacts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from sklearn.metrics import f1_score

from benchmarks._common import RECIPE_SVM, SHARED_POSTERS, cpu_kind
from posterml.classifiers.base import GenreClassifier
from posterml.data.sources import load_dataset
from posterml.evaluation.decision import DecisionLayer, cross_fit_predict
from posterml.evaluation.metrics import VINTAGE_BEFORE, top_k_baseline
from posterml.evaluation.priority import review_priority
from posterml.modeling.families import get_family
from posterml.modeling.fitting import decision_layer, fit_classifier, out_of_fold_scores
from posterml.modeling.settings import BackboneSVMOptions, ExperimentConfig

EXPERIMENT = "benchmark-vintage-curve"
# From --tune on the real posters' modern train split (grid below, 80/20, objective val
# weighted F1, the recipe's): .508 at C 10 and 30 with gamma_scale 2, .507 at C 1 with
# gamma_scale 1, .43 at gamma_scale 8. C 10 and 30 tie because no dual reaches C there (a
# hard margin): a sample weight, which only scales C, then changes nothing (the first real
# run's weighted models equalled the pooled ones to the last digit). So C 1, on the flat top.
PARAMS = RECIPE_SVM
GRID = {"C": (1.0, 3.0, 10.0, 30.0), "gamma_scale": (0.5, 1.0, 2.0, 4.0, 8.0)}
WAYS = ("pooled", "weighted", "separate")
METRICS = ("vintage_micro", "vintage_samples", "modern_micro", "modern_samples")


# --------------------------------------------------------------------------- data
@dataclass
class Posters:
    """Features, labels and years of every readable poster, and the fixed split (row
    indices): ``reference``, ``pool``, ``modern_test``, ``modern_train``."""

    X: np.ndarray
    Y: np.ndarray
    years: np.ndarray
    rows: dict[str, np.ndarray] = field(default_factory=dict)


def _stratified(rows: np.ndarray, Y: np.ndarray, fraction: float, seed: int):
    """(kept, cut) subsets of ``rows``, ``fraction`` cut, stratified on all genres."""
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    kept, cut = next(splitter.split(np.zeros(len(rows)), Y[rows]))
    return rows[np.sort(kept)], rows[np.sort(cut)]


def load_posters(data: str, features: str, seed: int) -> Posters:
    """Features of every poster (Lite0 from the feature cache, or small pixels for the
    smoke run) and the split described in the module docstring."""
    dataset = load_dataset(data)
    if features == "pixels":  # the smoke run: no TensorFlow, a few seconds
        from posterml.features.pixels import PixelFeaturizer

        result = PixelFeaturizer(size=(24, 16)).transform_paths(dataset.image_paths)
        X = result.features.reshape(len(result.features), -1).astype(np.float32) / 255.0
    else:
        from posterml.features.backbone import BackboneFeaturizer

        result = BackboneFeaturizer(features, progress=False).transform_paths(dataset.image_paths)
        X = result.features.astype(np.float32)
    posters = Posters(X, dataset.labels[result.ok], dataset.years[result.ok])
    vintage = np.flatnonzero(posters.years < VINTAGE_BEFORE)
    modern = np.flatnonzero(posters.years >= VINTAGE_BEFORE)
    pool, reference = _stratified(vintage, posters.Y, 0.3, seed)
    modern_train, modern_test = _stratified(modern, posters.Y, 0.1, seed)
    posters.rows = dict(
        reference=reference, pool=pool, modern_test=modern_test, modern_train=modern_train
    )
    return posters


# --------------------------------------------------------------------------- models
@dataclass
class Model:
    """A fitted classifier and its decision layer."""

    classifier: GenreClassifier
    layer: DecisionLayer

    def proba(self, X: np.ndarray) -> np.ndarray:
        return self.layer.predict_proba(self.classifier.predict_scores(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.layer.predict(self.classifier.predict_scores(X))


class Trainer:
    """The recipe with fixed hyperparameters: out-of-fold scores -> decision layer, then the
    classifier refitted on every row (``posterml.modeling.fitting``)."""

    def __init__(self, posters: Posters, params: dict, config: ExperimentConfig) -> None:
        self.posters, self.params, self.config = posters, params, config
        self.fits = 0

    def fit(self, rows: np.ndarray, weights: np.ndarray | None = None) -> Model:
        p = self.posters
        X, Y, years = p.X[rows], p.Y[rows], p.years[rows]
        # A fresh family per model: its distance cache would otherwise keep every fit's
        # n x n matrix (none is reused: each fold's rows differ).
        family = get_family("resnet_svm", BackboneSVMOptions(class_weight="balanced"))
        scores = out_of_fold_scores(family, self.params, self.config, X, Y, sample_weight=weights)
        classifier = fit_classifier(
            family, self.params, self.config.seed, X, Y, sample_weight=weights
        )
        self.fits += self.config.cv_folds + 1
        return Model(classifier, decision_layer(self.config).fit(scores, Y, years))


def f1s(Y: np.ndarray, pred: np.ndarray, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_{a}": float(f1_score(Y, pred, average=a, zero_division=0))
        for a in ("micro", "samples")
    }


class Curve:
    """Trains and scores the three ways for a set of added vintage posters, remembering
    results by the set (every selection ends with the whole pool)."""

    def __init__(self, trainer: Trainer, args: argparse.Namespace) -> None:
        self.trainer, self.args = trainer, args
        rows = trainer.posters.rows
        start = time.perf_counter()
        self.modern = trainer.fit(rows["modern_train"])
        print(
            f"one model ({trainer.config.cv_folds} out-of-fold fits + the refit) on "
            f"{len(rows['modern_train'])} posters: {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        self._done: dict[bytes, tuple[dict, Model]] = {}

    def _score(self, vintage_model: Model, modern_model: Model) -> dict[str, float]:
        p = self.trainer.posters
        ref, test = p.rows["reference"], p.rows["modern_test"]
        return {
            **f1s(p.Y[ref], vintage_model.predict(p.X[ref]), "vintage"),
            **f1s(p.Y[test], modern_model.predict(p.X[test]), "modern"),
        }

    def step(self, added: np.ndarray) -> tuple[dict[str, dict], Model]:
        """{way: metrics} for modern train + ``added``, and the pooled model (it ranks the
        pool for the priority selection)."""
        key = np.sort(added).tobytes()
        if key in self._done:
            return self._done[key]
        rows = self.trainer.posters.rows
        if not len(added):  # nothing added: every way is the modern model
            scores = {**self._score(self.modern, self.modern), "fallback": False}
            self._done[key] = ({w: dict(scores) for w in WAYS}, self.modern)
            return self._done[key]
        train = np.concatenate([rows["modern_train"], added])
        weights = np.r_[np.ones(len(rows["modern_train"])), np.full(len(added), self.args.w)]
        pooled = self.trainer.fit(train)
        weighted = self.trainer.fit(train, weights)
        separate_ok = len(added) >= self.args.min_separate
        vintage_only = self.trainer.fit(added) if separate_ok else self.modern
        result = {
            "pooled": {**self._score(pooled, pooled), "fallback": False},
            "weighted": {**self._score(weighted, weighted), "fallback": False},
            "separate": {**self._score(vintage_only, self.modern), "fallback": not separate_ok},
        }
        self._done[key] = (result, pooled)
        return self._done[key]


def parse_steps(text: str, pool_size: int) -> list[int]:
    """``"25,50,all"`` -> [25, 50, pool size], capped at the pool, sorted, distinct."""
    counts = {pool_size if s.strip() == "all" else min(int(s), pool_size) for s in text.split(",")}
    return sorted(c for c in counts if c > 0)


def run_selection(
    curve: Curve, selection: str, seed: int, steps: list[int], diversity: float = 0.5
) -> list[dict]:
    """Rows of the table for one selection: ``random`` (with ``seed``), or by priority."""
    pool = curve.trainer.posters.rows["pool"]
    X = curve.trainer.posters.X
    order = np.random.default_rng(seed).permutation(pool)
    added = np.array([], dtype=np.int64)
    out = []
    for count in [0, *steps]:
        if selection == "random":
            added = order[:count]
        elif count > len(added):
            left = np.setdiff1d(pool, added)
            _, model = curve.step(added)
            cuts = model.layer.thresholds_for(len(left))
            priority = review_priority(model.proba(X[left]), cuts, X[left], diversity=diversity)
            chosen = left[np.argsort(-priority, kind="stable")[: count - len(added)]]
            added = np.concatenate([added, chosen])
        result, _ = curve.step(added)
        for way, metrics in result.items():
            out.append({"added": count, "selection": selection, "seed": seed, "way": way})
            out[-1].update(metrics)
        print(f"  {selection} seed {seed}: {count} vintage posters added", flush=True)
    return out


# --------------------------------------------------------------------------- tuning
def tune(posters: Posters, config: ExperimentConfig) -> dict:
    """The small grid behind ``PARAMS``: fit on 80% of modern train, decide the other 20%
    with a cross-fitted decision layer (as a search trial does); best val weighted F1."""
    fit_rows, val_rows = _stratified(posters.rows["modern_train"], posters.Y, 0.2, config.seed)
    X, Y = posters.X, posters.Y
    family = get_family("resnet_svm", BackboneSVMOptions(class_weight="balanced"))
    rows = []
    for C in GRID["C"]:
        for gamma_scale in GRID["gamma_scale"]:
            params = {"C": C, "gamma_scale": gamma_scale, "class_weight": "balanced"}
            start = time.perf_counter()
            model = fit_classifier(family, params, config.seed, X[fit_rows], Y[fit_rows])
            scores = model.predict_scores(X[val_rows])
            _, pred, _ = cross_fit_predict(
                decision_layer(config), scores, Y[val_rows], seed=config.seed
            )
            row = {"C": C, "gamma_scale": gamma_scale, "seconds": time.perf_counter() - start}
            for average in ("weighted", "micro", "samples"):
                row[f"val_{average}"] = f1_score(
                    Y[val_rows], pred, average=average, zero_division=0
                )
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    best = max(rows, key=lambda r: r["val_weighted"])
    print(f"best: C {best['C']}, gamma_scale {best['gamma_scale']}")
    return {"C": best["C"], "gamma_scale": best["gamma_scale"], "class_weight": "balanced"}


# --------------------------------------------------------------------------- report
def summarise(rows: list[dict]) -> pd.DataFrame:
    """One row per (added, selection, way): the metrics, random averaged over seeds (with
    their standard deviation) and the number of seeds."""
    frame = pd.DataFrame(rows)
    # In the order they ran: random first.
    frame["selection"] = pd.Categorical(frame["selection"], list(dict.fromkeys(frame["selection"])))
    frame["way"] = pd.Categorical(frame["way"], WAYS)
    grouped = frame.groupby(["added", "selection", "way"], sort=True, observed=True)
    table = grouped[list(METRICS)].mean()
    for metric in ("vintage_micro", "vintage_samples"):
        table[f"{metric}_sd"] = grouped[metric].std(ddof=1).fillna(0.0)
    table["seeds"] = grouped["seed"].nunique()
    table["fallback"] = grouped["fallback"].max().astype(bool)
    return table.reset_index()


def printable(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells: micro/samples pairs, ``*`` where separate fell back."""

    def pair(row: pd.Series, period: str) -> str:
        cell = f"{row[f'{period}_micro']:.3f} / {row[f'{period}_samples']:.3f}"
        if period == "vintage" and row["selection"] == "random" and row["seeds"] > 1:
            cell += f" ±{row['vintage_micro_sd']:.3f}"
        return cell + ("*" if row["fallback"] else "")

    shown = table.assign(
        vintage=table.apply(pair, axis=1, period="vintage"),
        modern=table.apply(pair, axis=1, period="modern"),
    )
    wide = shown.pivot(index=["added", "selection"], columns="way", values=["vintage", "modern"])
    wide.columns = [f"{period} {way}" for period, way in wide.columns]
    return wide[[f"{p} {w}" for p in ("vintage", "modern") for w in WAYS]].reset_index()


def priority_gain(rows: list[dict]) -> pd.DataFrame:
    """Each priority selection minus random, per step and way, on vintage F1: the mean gain
    over seeds and in how many seeds priority beat (micro) that seed's random sequence. The
    last step (the whole pool) is the same set for every selection and is left out."""
    frame = pd.DataFrame(rows)
    frame = frame[(frame["added"] > 0) & (frame["added"] < frame["added"].max())]
    out = []
    for (added, way), group in frame.groupby(["added", "way"], sort=True):
        rand = group[group["selection"] == "random"]
        for selection in group["selection"].unique():
            prio = group[group["selection"] == selection]
            if selection == "random" or rand.empty:
                continue
            gain = {
                a: float(prio[f"vintage_{a}"].iloc[0]) - rand[f"vintage_{a}"].to_numpy()
                for a in ("micro", "samples")
            }
            out.append(
                {
                    "selection": selection,
                    "added": added,
                    "way": way,
                    "gain_micro": gain["micro"].mean(),
                    "gain_samples": gain["samples"].mean(),
                    "wins": f"{int((gain['micro'] > 0).sum())}/{len(rand)}",
                }
            )
    if not out:
        return pd.DataFrame()
    return pd.DataFrame(out).sort_values(["selection", "added"], kind="stable", ignore_index=True)


def figure(table: pd.DataFrame, baseline: dict[str, float], path: Path) -> None:
    """Vintage and modern micro/samples F1 against vintage posters added: one colour per
    way, solid random (mean, +-1 sd band), dashed and dash-dotted the priority selections,
    dotted gray the baseline."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5), dpi=110)
    FigureCanvasAgg(fig)
    counts = sorted(table["added"].unique())
    x_of = {c: k for k, c in enumerate(counts)}  # evenly spaced steps
    colours = dict(zip(WAYS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for k, metric in enumerate(METRICS):
        ax = fig.add_subplot(2, 2, k + 1)
        for way in WAYS:
            selections = list(table["selection"].cat.categories)
            styles = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))]
            for selection, style in zip(selections, styles * 3, strict=False):
                part = table[(table["way"] == way) & (table["selection"] == selection)]
                part = pd.concat([table[(table["added"] == 0) & (table["way"] == way)], part])
                part = part.drop_duplicates("added").sort_values("added")
                x = [x_of[c] for c in part["added"]]
                ax.plot(
                    x,
                    part[metric],
                    linestyle=style,
                    color=colours[way],
                    label=f"{way}, {selection}",
                )
                if selection == "random" and f"{metric}_sd" in part:
                    low, high = (
                        part[metric] - part[f"{metric}_sd"],
                        part[metric] + part[f"{metric}_sd"],
                    )
                    ax.fill_between(x, low, high, color=colours[way], alpha=0.12)
        ax.axhline(baseline[metric], color="gray", linestyle=":", label="Drama + Comedy")
        ax.set_xticks(range(len(counts)), [str(c) for c in counts])
        period, average = metric.split("_")
        where = "vintage reference" if period == "vintage" else "modern test"
        ax.set_title(f"{average} F1, {where}")
        ax.set_xlabel("vintage posters added")
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def log_to_mlflow(args, posters, params, table, baseline, paths, timing) -> str:
    import mlflow

    from posterml.tracking import configure_tracking, sqlite_file

    configure_tracking()
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # A smoke run keeps its artifacts beside a sqlite store, not in ./mlruns.
        db = sqlite_file(mlflow.get_tracking_uri())
        where = str(db.resolve().parent / "mlruns") if db and args.smoke else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=where)
    mlflow.set_experiment(EXPERIMENT)
    name = "synthetic" if args.data == "synthetic" else Path(args.data).name
    with mlflow.start_run(run_name=f"vintage curve · {name}") as run:
        mlflow.set_tags({"dataset": name, "cpu": cpu_kind(), "features": args.features})
        mlflow.log_params({**params, **{k: v for k, v in vars(args).items() if k != "data"}})
        mlflow.log_params({f"n_{k}": len(v) for k, v in posters.rows.items()})
        mlflow.log_metrics({f"baseline_{k}": v for k, v in baseline.items()})
        mlflow.log_metrics(timing)
        for row in table.itertuples(index=False):
            for metric in METRICS:
                key = f"{metric}_{row.way}_{row.selection.replace(' ', '_')}"
                mlflow.log_metric(key, getattr(row, metric), step=int(row.added))
        for path in paths:
            mlflow.log_artifact(str(path))
        return run.info.run_id


# --------------------------------------------------------------------------- main
DEFAULT_OUT = Path("outputs/vintage-curve")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(SHARED_POSTERS), help="a folder or 'synthetic'")
    parser.add_argument("--features", default="efficientnet_lite0", help="a backbone, or pixels")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="random-selection seeds")
    parser.add_argument("--steps", default="25,50,100,200,400,all")
    parser.add_argument(
        "--diversity", default="0.5", help="review_priority diversities, one sequence each"
    )
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--vintage-weight", dest="w", type=float, default=4.0)
    parser.add_argument("--min-separate", type=int, default=100)
    parser.add_argument("--C", type=float, default=PARAMS["C"])
    parser.add_argument("--gamma-scale", type=float, default=PARAMS["gamma_scale"])
    parser.add_argument(
        "--tune", action="store_true", help="only re-run the grid behind PARAMS and print it"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument(
        "--smoke", action="store_true", help="synthetic set, pixels, tiny steps: seconds"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.data, args.features, args.seeds, args.steps = "synthetic", "pixels", "0,1", "10,all"
        args.diversity = "0,0.5,1"
        args.cv_folds, args.min_separate = 2, 10
        if args.out == DEFAULT_OUT:  # a smoke run leaves nothing in the working folder
            args.out = Path(tempfile.mkdtemp(prefix="posterml-vintage-smoke-"))
    return args


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    start, cpu = time.perf_counter(), time.process_time()
    posters = load_posters(args.data, args.features, args.split_seed)
    config = ExperimentConfig("resnet_svm", seed=args.split_seed, cv_folds=args.cv_folds)
    params = {"C": args.C, "gamma_scale": args.gamma_scale, "class_weight": "balanced"}
    if args.tune:
        tune(posters, config)
        return pd.DataFrame()
    sizes = ", ".join(f"{k} {len(v)}" for k, v in posters.rows.items())
    print(f"{args.data}: {sizes}; C {params['C']}, gamma_scale {params['gamma_scale']}")
    features_s = time.perf_counter() - start

    rows = posters.rows
    train_labels = posters.Y[rows["modern_train"]]
    baseline = {}
    for period, split in (("vintage", "reference"), ("modern", "modern_test")):
        Y = posters.Y[rows[split]]
        for key, value in f1s(Y, top_k_baseline(train_labels, len(Y)), period).items():
            baseline[key] = value
    steps = parse_steps(args.steps, len(rows["pool"]))
    trainer = Trainer(posters, params, config)
    curve = Curve(trainer, args)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        results += run_selection(curve, "random", seed, steps)
    for diversity in (float(d) for d in args.diversity.split(",")):
        results += run_selection(curve, f"priority {diversity:g}", 0, steps, diversity)
    table = summarise(results)
    timing = {
        "wall_minutes": (time.perf_counter() - start) / 60,
        "cpu_minutes": (time.process_time() - cpu) / 60,
        "features_minutes": features_s / 60,
        "svm_fits": trainer.fits,
    }

    # The numbers first: a figure that fails must not lose an hour of fits.
    args.out.mkdir(parents=True, exist_ok=True)
    png, csv = args.out / "vintage_curve.png", args.out / "vintage_curve.csv"
    pd.DataFrame(results).to_csv(args.out / "vintage_curve_runs.csv", index=False)
    table.to_csv(csv, index=False)

    print(
        f"\nVintage curve on {args.data} (split seed {args.split_seed}; C {params['C']}, "
        f"gamma_scale {params['gamma_scale']}, balanced; {args.cv_folds} out-of-fold folds; "
        f"vintage weight {args.w}; separate from {args.min_separate} posters, * = the modern "
        f"model decides vintage posters; random: mean ±sd of vintage micro over seeds "
        f"{args.seeds})"
    )
    print("cells: micro / samples F1")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(printable(table).to_string(index=False))
        print(
            f"baseline (Drama + Comedy): vintage {baseline['vintage_micro']:.3f} / "
            f"{baseline['vintage_samples']:.3f}, modern {baseline['modern_micro']:.3f} / "
            f"{baseline['modern_samples']:.3f}"
        )
        gain = priority_gain(results)
        if not gain.empty:
            print("\npriority minus random, vintage F1 (mean over seeds; seeds won, micro):")
            print(gain.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    figure(table, baseline, png)
    print(
        f"\n{timing['wall_minutes']:.1f} wall min, {timing['cpu_minutes']:.1f} CPU min "
        f"({trainer.fits} SVM fits; {os.cpu_count()} cores, {cpu_kind()}); figure {png}"
    )
    if not args.no_mlflow:
        run_id = log_to_mlflow(args, posters, params, table, baseline, [png, csv], timing)
        print(f"MLflow run {run_id} (experiment {EXPERIMENT})")
    return table


if __name__ == "__main__":
    main()

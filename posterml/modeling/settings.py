"""What an experiment run is asked to do: shared knobs plus one dataclass per family.

A run logs only the knobs that apply to it (a ``pca_classic`` run has no ``backbone``).
Every field is an MLproject parameter of the family's entry point; tests/test_packaging.py
checks names and defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from posterml.evaluation.decision import (
    DEFAULT_CV_FOLDS,
    DEFAULT_MAX_GENRES,
    DEFAULT_MAX_MAYBE,
    DEFAULT_MAYBE_PER_POSTER,
    DEFAULT_MIN_POSITIVES,
    DEFAULT_PRECISION_FLOOR,
    DEFAULT_RATE_CAP,
)
from posterml.modeling.scale import EXACT_MAX_POSTERS
from posterml.names import DEFAULT_OBJECTIVE
from posterml.tracking import redacted_url

# Optuna's sentinel for a knob it should choose: class_weight=search lets the study decide.
SEARCHED = "search"
# What a model looks at: the picture always; beside it, optionally, the words OCR reads on it
# (``ocr``) and the detail of three full-resolution square crops (``detail``).
IMAGE_VIEW = "image"
OCR_VIEW = "ocr"
DETAIL_VIEW = "detail"
VIEWS = ("image", "image+ocr", "image+detail", "image+ocr+detail")


def view_parts(views: str) -> frozenset[str]:
    """The views named in ``views`` (``image+ocr+detail``, any order, ``image`` first or
    implied); a ``ValueError`` names an unknown one."""
    parts = [p.strip() for p in str(views).split("+") if p.strip()]
    unknown = set(parts) - {IMAGE_VIEW, OCR_VIEW, DETAIL_VIEW}
    if unknown or IMAGE_VIEW not in parts:
        raise ValueError(f"views {views!r}: use one of {', '.join(VIEWS)}")
    return frozenset(parts)


def views_name(parts: frozenset[str] | set[str]) -> str:
    """The canonical spelling of a set of views: ``image``, then ``ocr``, then ``detail``."""
    return "+".join(p for p in (IMAGE_VIEW, OCR_VIEW, DETAIL_VIEW) if p in parts)


@dataclass
class FamilyOptions:
    """Knobs of one model family (subclasses add fields); the base has none."""


@dataclass
class PixelPCAOptions(FamilyOptions):
    pixel_size: str = "150x100"  # grayscale HEIGHTxWIDTH
    pca_components: int = 20
    class_weight: str = SEARCHED  # search, none or balanced (logreg and random forest)


@dataclass
class ScratchCNNOptions(FamilyOptions):
    image_size: str = "96x64"  # RGB HEIGHTxWIDTH
    positive_weighting: str = SEARCHED  # search, none, sqrt or balanced
    epochs: int = 30


@dataclass
class BackboneSVMOptions(FamilyOptions):
    backbone: str = "resnet50"
    class_weight: str = SEARCHED  # search, none or balanced
    # auto: the exact RBF SVM up to max_exact_posters train+val posters, Nystroem above
    # (posterml.modeling.scale); exact or nystroem pins one.
    svm_head: str = "auto"
    max_exact_posters: int = EXACT_MAX_POSTERS
    memory_gib: float = 0.0  # the memory a run may plan for; 0: what is available at start


@dataclass
class BackboneMLPOptions(FamilyOptions):
    backbone: str = "resnet50"
    positive_weighting: str = SEARCHED
    epochs: int = 100  # early stopping on validation F1 ends most runs long before


@dataclass
class EnsembleOptions(FamilyOptions):
    backbone: str = "resnet50"
    class_weight: str = SEARCHED  # the SVM member
    positive_weighting: str = SEARCHED  # the MLP member
    epochs: int = 100


@dataclass
class FineTuneOptions(FamilyOptions):
    backbone: str = "efficientnet_lite0"  # the offline backbone; resnet50 needs the internet
    positive_weighting: str = SEARCHED  # when the searched loss is weighted BCE
    epochs: int = 15  # measured: early stopping ends at 8-12 epochs on 5,533 real posters


@dataclass
class CompareOptions(FamilyOptions):
    """``compare`` runs several families: each knob reaches the families it applies to."""

    # The families' own defaults, stated once in their dataclasses above.
    backbone: str = BackboneSVMOptions.backbone
    class_weight: str = SEARCHED
    positive_weighting: str = SEARCHED
    epochs: int = ScratchCNNOptions.epochs
    pixel_size: str = PixelPCAOptions.pixel_size
    pca_components: int = PixelPCAOptions.pca_components
    image_size: str = ScratchCNNOptions.image_size


@dataclass
class ExperimentConfig:
    """Every knob of an experiment run: the shared ones here, the family's in ``options``."""

    family: str
    options: FamilyOptions = field(default_factory=FamilyOptions)
    data: str = "synthetic"
    seed: int = 42
    n_trials: int = 10
    timeout: float = 0.0  # seconds for the whole search; 0 = no limit
    train_years: str = "all"
    test_years: str = "all"
    storage: str = ""  # Optuna storage URL; empty: optuna.db beside the tracking store
    study_name: str = ""  # empty: a fresh study per run; name one to share it between workers
    objective: str = DEFAULT_OBJECTIVE  # the val_ metric the search optimises
    tune_thresholds: bool = True  # false: the study's rule, raw scores cut at 0.5
    min_one_genre: bool = True
    max_genres: int = DEFAULT_MAX_GENRES  # TMDb's first five, as the study kept
    rate_cap: float = DEFAULT_RATE_CAP  # no genre predicted for more than 1.3x its rate
    # Fewer examples than this: a genre keeps the 0.5 cut.
    min_positives: int = DEFAULT_MIN_POSITIVES
    # A genre is asserted only where its out-of-fold precision clears this (0: off).
    precision_floor: float = DEFAULT_PRECISION_FLOOR
    max_maybe: int = DEFAULT_MAX_MAYBE  # maybe genres per poster at most (0: no maybe)
    maybe_per_poster: float = DEFAULT_MAYBE_PER_POSTER  # maybe genres per poster on average
    # Out-of-fold scores over train+val; 0: decide from validation scores.
    cv_folds: int = DEFAULT_CV_FOLDS
    max_posters: int = 0  # 0 = all; a cap for quick looks at big folders
    views: str = IMAGE_VIEW  # image, plus +ocr (the words) and/or +detail (crops) fused in
    experiment: str = ""  # empty: the active/default MLflow experiment
    log_model: bool = True

    def __post_init__(self) -> None:
        self.views = views_name(view_parts(self.views))

    def params(self) -> dict:
        """What is logged as MLflow params: the shared knobs and the family's own."""
        shared = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("options", "experiment", "log_model")
        }
        if shared["storage"]:  # a PostgreSQL URL may hold a password: never log it
            shared["storage"] = redacted_url(shared["storage"])
        return {**shared, **dataclasses.asdict(self.options)}

    def replace(self, **knobs) -> ExperimentConfig:
        """A copy with some knobs changed, shared or the family's (``replace(backbone=...)``).

        A knob that is neither is an error naming it, not silently dropped."""
        own = {f.name for f in dataclasses.fields(self)}
        options = {f.name for f in dataclasses.fields(self.options)}
        unknown = set(knobs) - own - options
        if unknown:
            raise ValueError(
                f"{sorted(unknown)} do not apply to {self.family}: its knobs are "
                f"{sorted(options) + sorted(own - {'options', 'family'})}"
            )
        new_options = dataclasses.replace(
            self.options, **{k: v for k, v in knobs.items() if k in options}
        )
        return dataclasses.replace(
            self, options=new_options, **{k: v for k, v in knobs.items() if k in own}
        )


# Shared fields that are command-line flags but not MLproject parameters: under `mlflow run`
# the experiment is chosen by --experiment-name, and a served model is what a run is for.
CLI_ONLY = ("experiment", "log_model")


def shared_knobs() -> list[dataclasses.Field]:
    """The shared fields that are MLproject parameters."""
    internal = ("family", "options", *CLI_ONLY)
    return [f for f in dataclasses.fields(ExperimentConfig) if f.name not in internal]


# The recipe we ship: what `python -m research.quality` found best on ../shared/posters
# (EfficientNet-Lite0 features, which work offline, + balanced RBF SVMs behind the decision
# layer), trained on every decade so the decision layer knows each decade's genre rates, and
# every view `python -m research.views` found to beat the picture alone fused in.
# `mlflow run . -P data=FOLDER` runs it (the MLproject's `main` entry point).
RECOMMENDED = {
    "family": "resnet_svm",
    "backbone": "efficientnet_lite0",
    "class_weight": "balanced",
    "n_trials": 20,
    "views": "image+ocr+detail",
}

# Shared knobs an entry point sets differently from ExperimentConfig's defaults.
ENTRY_POINT_DEFAULTS: dict[str, dict] = {
    "main": {k: v for k, v in RECOMMENDED.items() if k != "family"},
    # Fine-tuning trains a network per trial (~4 min each on 5,533 posters, 2 AVX2 cores):
    # 3 trials and decisions from validation scores keep a run near 25 minutes.
    "finetune": {"n_trials": 3, "cv_folds": 0},
}

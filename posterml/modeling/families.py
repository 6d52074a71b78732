"""The model families, each a small plug-in for the one experiment runner.

A family says how posters become inputs (its featurizer), which hyperparameters Optuna
searches, how to build a classifier from them, and whether that classifier is "balanced"
(reweights rare genres). Everything else (splits, trials, metrics, logging) is shared.
A family instance holds its options (``posterml.modeling.settings``), as an estimator holds
its arguments; it is built by ``get_family(name, options)``.

A new family touches these places, and nothing else needs to know its name (``compare``
runs its own fixed four):

1. its classifier in ``posterml/classifiers/``: a ``GenreClassifier`` (``base.py`` there) whose
   class carries ``@register_classifier("its_kind")``, the ``kind`` its saved files name;
2. that module imported in ``posterml/classifiers/loading.py``, so ``load_classifier`` (the
   served model too) knows the kind before it reads a saved model of it;
3. its options dataclass in ``posterml/modeling/settings.py``, a ``FamilyOptions`` subclass
   holding only its own knobs (each field becomes a flag and an MLproject parameter); and,
   if its entry point needs other shared defaults, a row of ``ENTRY_POINT_DEFAULTS``;
4. a ``Family`` subclass here (``name``, ``options_class``, ``featurizer``, ``suggest``,
   ``classifier``; ``early_stopping`` if ``fit`` holds out validation data; a featurizer of a
   new kind is registered the same way, in ``posterml/features/loading.py``), added to the
   tuple that builds ``FAMILIES``: the entry point ``python -m experiments.run NAME``
   (``modeling.cli.ENTRY_POINTS``) follows from it;
5. ``make mlproject`` to regenerate ``MLproject`` (``tests/test_packaging.py`` fails while it
   is stale) and the family's entry point in that test's ``EXPERIMENTS``;
6. a test: its kind in ``tests/test_model_files.py``'s list of registered kinds and a
   fit/save/load round trip of its classifier (as ``tests/test_models.py`` and
   ``tests/test_model_files.py`` have for the others); and a row in the README's table of
   entry points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from posterml.classifiers.base import GenreClassifier
from posterml.classifiers.classic import CLASSIC_KINDS, ClassicClassifier
from posterml.classifiers.keras_models import (
    POSITIVE_WEIGHTINGS,
    MLPClassifier,
    ScratchCNNClassifier,
)
from posterml.classifiers.nystroem import NystroemSVMClassifier
from posterml.classifiers.svm import DistanceCache, RBFSVMClassifier
from posterml.modeling.scale import HeadPlan, plan_head
from posterml.modeling.settings import (
    SEARCHED,
    BackboneMLPOptions,
    BackboneSVMOptions,
    EnsembleOptions,
    FamilyOptions,
    FineTuneOptions,
    PixelPCAOptions,
    ScratchCNNOptions,
)

if TYPE_CHECKING:
    import optuna


def parse_size(text: str) -> tuple[int, int]:
    """``"150x100"`` -> (150, 100): height x width, like the study's 750x500."""
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"bad image size {text!r}: use HEIGHTxWIDTH, e.g. 150x100") from None
    return height, width


class Family(ABC):
    """One model family: featurizer, search space, classifier factory."""

    name: ClassVar[str]
    options_class: ClassVar[type[FamilyOptions]] = FamilyOptions
    early_stopping: ClassVar[bool] = False  # fit() stops on validation data: hold some out

    def __init__(self, options: FamilyOptions | None = None) -> None:
        self.options = options if options is not None else self.options_class()

    @abstractmethod
    def featurizer(self):
        """A fresh featurizer (fitted later on the train split by the runner)."""

    @abstractmethod
    def suggest(self, trial: optuna.Trial) -> dict:
        """Sample one trial's hyperparameters."""

    @abstractmethod
    def classifier(self, params: dict, seed: int) -> GenreClassifier:
        """An unfitted classifier for these hyperparameters."""

    def plan(self, n_dev: int, n_total: int, feature_sets: int = 1) -> HeadPlan | None:
        """Check, before any feature is extracted, that ``n_dev`` train+val posters (of
        ``n_total``) can be trained on here, with ``feature_sets`` picture views (2 with the
        detail view); a family that adapts its model to the size says how in a
        ``HeadPlan``. Most families have nothing to plan."""
        return None

    def is_balanced(self, params: dict) -> bool:
        """Does the classifier reweight rare genres (the study's "balanced" model)?"""
        return (
            params.get("class_weight") == "balanced"
            or params.get("positive_weighting", "none") != "none"
        )

    @staticmethod
    def _choice(trial, name: str, fixed: str, options: tuple[str, ...]) -> str:
        """A categorical dimension Optuna searches, or the value the user pinned."""
        if fixed in ("", SEARCHED, None):
            return trial.suggest_categorical(name, list(options))
        if fixed not in options:
            raise ValueError(f"{name}={fixed!r}: use 'search' or one of {options}")
        return fixed


class PCAClassic(Family):
    """Pixel PCA + KNN / logistic regression / random forest (the kind is searched)."""

    name = "pca_classic"
    options_class = PixelPCAOptions

    def featurizer(self):
        from posterml.features.pixels import PixelPCAFeaturizer

        return PixelPCAFeaturizer(
            size=parse_size(self.options.pixel_size), n_components=self.options.pca_components
        )

    def suggest(self, trial):
        kind = trial.suggest_categorical("kind", list(CLASSIC_KINDS))
        params: dict = {"kind": kind}
        if kind == "knn":
            params["n_neighbors"] = trial.suggest_int("n_neighbors", 3, 50, log=True)
        elif kind == "logreg":
            params["C"] = trial.suggest_float("C", 1e-3, 10.0, log=True)
            params["class_weight"] = self._choice(
                trial, "class_weight", self.options.class_weight, ("none", "balanced")
            )
        else:
            params["n_estimators"] = trial.suggest_int("n_estimators", 50, 300, log=True)
            params["max_depth"] = trial.suggest_int("max_depth", 3, 20, log=True)
            params["class_weight"] = self._choice(
                trial, "class_weight", self.options.class_weight, ("none", "balanced")
            )
        return params

    def classifier(self, params, seed):
        return ClassicClassifier(seed=seed, **params)


class ScratchCNN(Family):
    """A small CNN trained from scratch on resized RGB posters."""

    name = "scratch_cnn"
    options_class = ScratchCNNOptions
    early_stopping = True

    def featurizer(self):
        from posterml.features.pixels import PixelFeaturizer

        return PixelFeaturizer(size=parse_size(self.options.image_size))

    def suggest(self, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
            "dense_units": trial.suggest_categorical("dense_units", [64, 128, 256]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "positive_weighting": self._choice(
                trial, "positive_weighting", self.options.positive_weighting, POSITIVE_WEIGHTINGS
            ),
        }

    def classifier(self, params, seed):
        return ScratchCNNClassifier(epochs=self.options.epochs, seed=seed, **params)


class BackboneSVM(Family):
    """Pretrained CNN features + one-vs-rest RBF SVMs on a shared kernel."""

    name = "resnet_svm"
    options_class = BackboneSVMOptions

    def __init__(self, options: FamilyOptions | None = None) -> None:
        super().__init__(options)
        # Distances between feature matrices are reused by every trial of a run.
        self.distances = DistanceCache()
        # What ``plan`` chose for this run's size; unplanned (benchmarks): as pinned, or exact.
        self.head = "nystroem" if self.options.svm_head == "nystroem" else "exact"

    def plan(self, n_dev: int, n_total: int, feature_sets: int = 1) -> HeadPlan:
        from posterml.features.backbone_registry import get_backbone

        plan = plan_head(
            n_dev,
            n_total,
            get_backbone(self.options.backbone).feature_dim,
            head=self.options.svm_head,
            max_exact_posters=self.options.max_exact_posters,
            memory_gib=self.options.memory_gib,
            feature_sets=feature_sets,
        )
        self.head = plan.head
        return plan

    def featurizer(self):
        from posterml.features.backbone import BackboneFeaturizer

        return BackboneFeaturizer(self.options.backbone)

    def suggest(self, trial):
        return {
            "C": trial.suggest_float("C", 0.1, 100.0, log=True),
            "gamma_scale": trial.suggest_float("gamma_scale", 0.1, 10.0, log=True),
            "class_weight": self._choice(
                trial, "class_weight", self.options.class_weight, ("none", "balanced")
            ),
        }

    def classifier(self, params, seed):
        if self.head == "nystroem":
            return NystroemSVMClassifier(random_state=seed, **params)
        return RBFSVMClassifier(distance_cache=self.distances, **params)


class BackboneMLP(Family):
    """Pretrained CNN features + the study's MLP, with per-genre positive weighting."""

    name = "resnet_mlp"
    options_class = BackboneMLPOptions
    early_stopping = True

    def featurizer(self):
        from posterml.features.backbone import BackboneFeaturizer

        return BackboneFeaturizer(self.options.backbone)

    def suggest(self, trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
            "positive_weighting": self._choice(
                trial, "positive_weighting", self.options.positive_weighting, POSITIVE_WEIGHTINGS
            ),
        }

    def classifier(self, params, seed):
        return MLPClassifier(epochs=self.options.epochs, seed=seed, **params)


class BackboneEnsemble(Family):
    """The SVM and the MLP on the same backbone features, their logits averaged with a
    searched weight (``posterml.classifiers.ensemble``); both members' knobs are searched too,
    under ``svm_`` and ``mlp_`` prefixes."""

    name = "ensemble"
    options_class = EnsembleOptions
    early_stopping = True  # the MLP member stops on validation data

    def __init__(self, options: FamilyOptions | None = None) -> None:
        super().__init__(options)
        o = self.options
        self.svm = BackboneSVM(BackboneSVMOptions(backbone=o.backbone, class_weight=o.class_weight))
        self.mlp = BackboneMLP(
            BackboneMLPOptions(
                backbone=o.backbone, positive_weighting=o.positive_weighting, epochs=o.epochs
            )
        )

    def featurizer(self):
        return self.svm.featurizer()

    def suggest(self, trial):
        svm = self.svm.suggest(_Prefixed(trial, "svm_"))
        mlp = self.mlp.suggest(_Prefixed(trial, "mlp_"))
        return {
            **{f"svm_{k}": v for k, v in svm.items()},
            **{f"mlp_{k}": v for k, v in mlp.items()},
            "blend_weight": trial.suggest_float("blend_weight", 0.3, 0.9),
        }

    @staticmethod
    def _member_params(params: dict, prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

    def classifier(self, params, seed):
        from posterml.classifiers.ensemble import EnsembleClassifier

        weight = params["blend_weight"]  # the SVM's share of the blend
        members = [
            self.svm.classifier(self._member_params(params, "svm_"), seed),
            self.mlp.classifier(self._member_params(params, "mlp_"), seed),
        ]
        return EnsembleClassifier(members, [weight, 1.0 - weight])

    def is_balanced(self, params: dict) -> bool:
        return self.svm.is_balanced(self._member_params(params, "svm_")) or self.mlp.is_balanced(
            self._member_params(params, "mlp_")
        )


# Where the fine-tuned top begins, per backbone: the last block and the head conv above it.
FINETUNE_CUTS = {"efficientnet_lite0": "blocks_14_add", "resnet50": "conv5_block2_out"}


class FineTune(Family):
    """The top of the pretrained backbone fine-tuned on posters (``posterml.classifiers.finetune``):
    the frozen trunk's feature maps are the cached features, the top block is trained."""

    name = "finetune"
    options_class = FineTuneOptions
    early_stopping = True

    @property
    def cut(self) -> str:
        backbone = self.options.backbone
        if backbone not in FINETUNE_CUTS:
            raise ValueError(f"no fine-tuning cut known for backbone {backbone!r}")
        return FINETUNE_CUTS[backbone]

    def featurizer(self):
        from posterml.features.backbone import BackboneFeaturizer

        return BackboneFeaturizer(self.options.backbone, cut=self.cut)

    def suggest(self, trial):
        from posterml.classifiers.finetune import LOSSES

        params = {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 2e-3, log=True),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "loss": trial.suggest_categorical("loss", list(LOSSES)),
        }
        if params["loss"] == "weighted_bce":
            params["positive_weighting"] = self._choice(
                trial, "positive_weighting", self.options.positive_weighting, POSITIVE_WEIGHTINGS
            )
        return params

    def classifier(self, params, seed):
        from posterml.classifiers.finetune import FineTunedTopClassifier

        return FineTunedTopClassifier(
            backbone=self.options.backbone,
            cut=self.cut,
            epochs=self.options.epochs,
            seed=seed,
            **params,
        )

    def is_balanced(self, params: dict) -> bool:
        return params.get("loss") == "asymmetric" or super().is_balanced(params)


class _Prefixed:
    """An Optuna trial whose parameter names get a prefix (``C`` -> ``svm_C``), so two
    members' search spaces live in one study without clashing."""

    def __init__(self, trial, prefix: str) -> None:
        self.trial, self.prefix = trial, prefix

    def suggest_float(self, name, *args, **kwargs):
        return self.trial.suggest_float(self.prefix + name, *args, **kwargs)

    def suggest_int(self, name, *args, **kwargs):
        return self.trial.suggest_int(self.prefix + name, *args, **kwargs)

    def suggest_categorical(self, name, *args, **kwargs):
        return self.trial.suggest_categorical(self.prefix + name, *args, **kwargs)


FAMILIES: dict[str, type[Family]] = {
    f.name: f
    for f in (PCAClassic, ScratchCNN, BackboneSVM, BackboneMLP, BackboneEnsemble, FineTune)
}


def family_class(name: str) -> type[Family]:
    """The family class behind an entry-point name, or a clear error naming the choices."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}: use one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def get_family(name: str, options: FamilyOptions | None = None) -> Family:
    """A fresh family instance by entry-point name, holding ``options`` (default: its own)."""
    return family_class(name)(options)

"""Registry of pretrained image backbones used as frozen feature extractors.

A backbone name gives everything the feature pipeline needs: a Keras model mapping preprocessed
float32 ``(n, h, w, 3)`` images to pooled ``(n, feature_dim)`` features, the matching
preprocessing (as data: channel order, mean and std), the input size, and a
``preprocessing_version`` that goes into the feature-cache key so cached features are
recomputed when weights or preprocessing change.

Importing this module is cheap: keras/TensorFlow (seconds to import) load only when a model is
built.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posterml.features.folding import fold_batch_norms
from posterml.features.lite.architecture import FEATURE_DIM as LITE0_FEATURE_DIM
from posterml.features.lite.architecture import INPUT_SIZE as LITE0_INPUT_SIZE
from posterml.features.lite.architecture import PREPROCESSING as LITE_PREPROCESSING
from posterml.features.lite.model import build_efficientnet_lite0
from posterml.features.preprocessing import Preprocessing

if TYPE_CHECKING:
    import keras

__all__ = [
    "Backbone",
    "BackboneUnavailableError",
    "available_backbones",
    "get_backbone",
    "register_backbone",
    "unregister_backbone",
]


class BackboneUnavailableError(RuntimeError):
    """A backbone cannot be built here (e.g. its weights cannot be downloaded)."""


@dataclass(frozen=True)
class Backbone:
    """A named frozen feature extractor and how to feed it."""

    name: str
    input_size: tuple[int, int]  # (height, width)
    feature_dim: int
    # Bump when preprocessing or weights change; part of the feature-cache key.
    preprocessing_version: str
    # -> inference model mapping preprocessed float32 (n, h, w, 3) to (n, feature_dim), with
    # batch norms folded into the convolutions where that pays
    build: Callable[[], keras.Model]
    # uint8 RGB (n, h, w, 3) -> float32 model input, as data (saved with featurizers)
    preprocessing: Preprocessing


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> None:
    """Add (or replace) a backbone under ``backbone.name``."""
    _REGISTRY[backbone.name] = backbone


def unregister_backbone(name: str) -> Backbone:
    """Remove the backbone registered as ``name`` and return it (``ValueError`` if unknown)."""
    backbone = get_backbone(name)
    del _REGISTRY[name]
    return backbone


def available_backbones() -> list[str]:
    """Names of the registered backbones, sorted."""
    return sorted(_REGISTRY)


def get_backbone(name: str) -> Backbone:
    """The backbone registered as ``name``; an unknown name raises ``ValueError``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_backbones())
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}") from None


# --- ResNet50 (Keras applications, weights downloaded by Keras) --------------------------------

RESNET50_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_WEIGHTS_FILE
)
RESNET50_WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # the hash Keras verifies
# Long enough for a slow but working connection, short enough that offline fails fast.
_PROBE_TIMEOUT_S = 3.0


def keras_models_dir() -> Path:
    """Where Keras caches application weights: ``$KERAS_HOME/models``, else ``~/.keras/models``.

    Mirrors Keras' own rule (including its ``/tmp/.keras`` fallback for an unwritable home)
    without importing Keras.
    """
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]).expanduser() / "models"
    home = Path.home()
    base = home if os.access(home, os.W_OK) else Path("/tmp")
    return base / ".keras" / "models"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _probe_url(url: str, timeout: float) -> str | None:
    """``None`` if ``url`` answers a HEAD request within ``timeout`` seconds, else why not.

    Runs in a daemon thread joined with a deadline: DNS lookups ignore socket timeouts and can
    otherwise block for much longer.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                outcome.append(None)
        except Exception as exc:  # any failure means "cannot download"; report it
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=probe, name="posterml-weights-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"


def _resnet50_unavailable(reason: str) -> BackboneUnavailableError:
    target = keras_models_dir() / RESNET50_WEIGHTS_FILE
    return BackboneUnavailableError(
        "backbone 'resnet50' is unavailable: its ImageNet weights are not in the Keras cache "
        "(or fail Keras' md5 check) and cannot be downloaded.\n"
        f"  tried: {RESNET50_WEIGHTS_URL} ({reason})\n"
        f"  looked for the Keras cache file: {target}\n"
        f"  for offline use, copy {RESNET50_WEIGHTS_FILE} (md5 {RESNET50_WEIGHTS_MD5}) "
        f"to {target} (or to $KERAS_HOME/models/)\n"
        "  or use the bundled backbone instead: --backbone efficientnet_lite0 "
        "(MLflow: -P backbone=efficientnet_lite0)"
    )


def _ensure_resnet50_weights_reachable() -> None:
    """Fail fast, with instructions, when Keras would have to download weights it cannot reach."""
    cached = keras_models_dir() / RESNET50_WEIGHTS_FILE
    if cached.is_file() and _md5(cached) == RESNET50_WEIGHTS_MD5:
        return  # Keras will use the cached file without touching the network
    reason = _probe_url(RESNET50_WEIGHTS_URL, _PROBE_TIMEOUT_S)
    if reason is not None:
        raise _resnet50_unavailable(reason)


def build_resnet50() -> keras.Model:
    """ImageNet ResNet50 without its classifier, global-average-pooled to 2048 features,
    batch norms folded into the convolutions (``fold_batch_norms``)."""
    _ensure_resnet50_weights_reachable()
    import keras

    try:
        model = keras.applications.ResNet50(include_top=False, pooling="avg", weights="imagenet")
    except Exception as exc:
        # Keras reports download failures as a bare Exception("URL fetch failure ...").
        if "URL fetch failure" in str(exc) or isinstance(exc, OSError):
            raise _resnet50_unavailable(str(exc)) from exc
        raise
    return fold_batch_norms(model)


# Keras' ResNet50 preprocessing ("caffe" mode): RGB -> BGR, minus the ImageNet means.
RESNET50_PREPROCESSING = Preprocessing(mean=(103.939, 116.779, 123.68), channels="bgr")


register_backbone(
    Backbone(
        name="resnet50",
        input_size=(224, 224),
        feature_dim=2048,
        preprocessing_version="keras-resnet50-caffe-v1",
        build=build_resnet50,
        preprocessing=RESNET50_PREPROCESSING,
    )
)
register_backbone(
    Backbone(
        name="efficientnet_lite0",
        input_size=(LITE0_INPUT_SIZE, LITE0_INPUT_SIZE),
        feature_dim=LITE0_FEATURE_DIM,
        preprocessing_version="lite0-579344248a93-127div128-v1",
        build=build_efficientnet_lite0,  # batch norms folded when its weights are converted
        preprocessing=LITE_PREPROCESSING,
    )
)

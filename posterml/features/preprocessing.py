"""A backbone's input preprocessing, declared as data: channel order, per-channel mean and std.

Every preprocessing the registered backbones use is ``(x[..., channels] - mean) / std`` on
uint8 RGB pixels: EfficientNet-Lite's ``(x - 127) / 128`` and Keras' "caffe" mode for
ResNet50 (RGB -> BGR, minus the ImageNet means). As data it is saved with a featurizer as
three short lists, so a saved featurizer never names code to run, and nothing has to be
recovered by probing a function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CHANNEL_ORDERS = ("rgb", "bgr")
SPEC_TYPE = "normalize"
# Saved by posterml before preprocessing was data: the map probed as ``x @ matrix + bias``.
LEGACY_AFFINE_TYPE = "affine"


@dataclass(frozen=True)
class Preprocessing:
    """uint8 RGB ``(..., 3)`` pixels -> float32 model input ``(x[..., order] - mean) / std``.

    ``channels`` is the order the model reads ("rgb", or "bgr" for caffe-style models);
    ``mean`` and ``std`` are per model-input channel, i.e. in that order.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "rgb"

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (
                not isinstance(values, Sequence)
                or len(values) != 3
                or not all(_is_number(v) and math.isfinite(v) for v in values)
            ):
                raise ValueError(f"preprocessing {name} must be 3 finite numbers, got {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if not all(s > 0 for s in self.std):
            raise ValueError(f"preprocessing std must be positive, got {self.std!r}")
        if self.channels not in CHANNEL_ORDERS:
            raise ValueError(f"preprocessing channels must be one of {CHANNEL_ORDERS}")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The model input for ``pixels`` (uint8 or float, last axis RGB), as a new array.

        float32 throughout, as Keras' own preprocessing does: for the two registered
        backbones the result is bit-identical to the functions this replaced.
        """
        x = np.asarray(pixels, dtype=np.float32)
        if self.channels == "bgr":
            x = x[..., ::-1]
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray((x - mean) / std)

    def to_spec(self) -> dict[str, Any]:
        """Plain JSON data that ``from_spec`` turns back into this preprocessing."""
        return {
            "type": SPEC_TYPE,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_spec(cls, spec: Any) -> Preprocessing:
        """The preprocessing saved as ``spec``; also reads the affine form older posterml saved.

        Anything else (an unknown type, the old ``"import"`` form that named a function) is a
        ``ValueError``: a saved featurizer is data and never selects code.
        """
        if not isinstance(spec, dict):
            raise ValueError(f"preprocessing must be a JSON object, got {spec!r}")
        kind = spec.get("type")
        if kind == SPEC_TYPE:
            return cls(mean=spec.get("mean"), std=spec.get("std"), channels=spec.get("channels"))
        if kind == LEGACY_AFFINE_TYPE:
            return cls.from_affine(spec.get("matrix"), spec.get("bias"))
        if kind == "import":
            raise ValueError(
                f"preprocessing {spec.get('ref')!r} is saved as code to import; a saved "
                "featurizer is data only, so this posterml refuses it: re-save the featurizer"
            )
        raise ValueError(f"unknown preprocessing type {kind!r}")

    @classmethod
    def from_affine(cls, matrix: Any, bias: Any) -> Preprocessing:
        """The preprocessing equal to ``x @ matrix + bias`` (row k: input channel k's effect).

        Older posterml saved preprocessing in this form, probed from a function; it is read
        back when it is a positive per-channel scale, in RGB or BGR order (as both
        registered backbones' were).
        """
        try:
            m = np.asarray(matrix, dtype=np.float64)
            b = np.asarray(bias, dtype=np.float64)
        except (TypeError, ValueError):
            m = b = np.empty(0)
        if (
            m.shape != (3, 3)
            or b.shape != (3,)
            or not (np.isfinite(m).all() and np.isfinite(b).all())
        ):
            raise ValueError("affine preprocessing needs a 3x3 matrix and 3 biases")
        outputs = np.arange(3)
        for channels, sources in (("rgb", outputs), ("bgr", outputs[::-1])):
            scale = m[sources, outputs]  # output channel j reads input channel sources[j]
            rest = m.copy()
            rest[sources, outputs] = 0.0
            if np.all(scale > 0) and np.abs(rest).max() <= 1e-6 * scale.max():
                return cls(mean=tuple(-b / scale), std=tuple(1.0 / scale), channels=channels)
        raise ValueError(
            "affine preprocessing is not a per-channel normalisation (RGB or BGR): "
            "this posterml cannot represent it; re-save the featurizer"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

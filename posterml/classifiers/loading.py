"""Reopening saved classifiers of every family.

Importing this module imports each classifier module, so each registers its saved-model
``kind`` (``@register_classifier``) before ``load_classifier`` dispatches on one: an ensemble's
members may be of any kind. The classifier modules never import this one: ``base`` never
needs to name its subclasses.
"""

from posterml.classifiers import (  # noqa: F401  (importing registers their kinds)
    classic,
    ensemble,
    finetune,
    keras_models,
    nystroem,
    svm,
    text,
)
from posterml.classifiers.base import load_classifier, registered_kinds

__all__ = ["load_classifier", "registered_kinds"]

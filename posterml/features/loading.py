"""Reopening saved featurizers of every built-in kind.

Importing this module imports each featurizer module, so each registers its kind
(``@register_featurizer``) before ``load_featurizer`` dispatches on a saved one. The
featurizer modules never import this one: ``base`` never needs to name its subclasses.
"""

from posterml.features import backbone, pixels  # noqa: F401  (importing registers their kinds)
from posterml.features.base import load_featurizer, registered_featurizers

__all__ = ["load_featurizer", "registered_featurizers"]

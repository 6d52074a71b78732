"""posterml.models: genre classifiers.

Importing the package imports every classifier module, so each registers its saved-model
``kind`` (``@register_classifier``) before anything is loaded: ``load_classifier`` then
dispatches through that registry, and ``base`` never needs to name its subclasses.
"""

from posterml.models import (  # noqa: F401  (importing registers their kinds)
    classic,
    ensemble,
    finetune,
    keras_models,
    svm,
)

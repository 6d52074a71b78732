"""posterml.classifiers: genre classifiers.

``posterml.classifiers.loading`` imports every classifier module, so each registers its saved-model
``kind`` (``@register_classifier``) before anything is loaded; this package imports nothing,
so that no family module imports itself back through it.
"""

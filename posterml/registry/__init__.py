"""The model registry: which run is registered, which version serves (``@champion``), and
how a new version proves itself on a fixed reference set before it replaces the champion.

* :mod:`~posterml.registry.champion`: the best trustworthy balanced run, registered;
* :mod:`~posterml.registry.reference`: a version scored on the reference set as served;
* :mod:`~posterml.registry.promotion`: the promotion rule, aliases and rollback;
* :mod:`~posterml.registry.model_source`: can a model URI be loaded from here?
"""

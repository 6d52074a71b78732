"""The model registry: which run is registered, which version serves (``@champion``), and
how a new version proves itself on a fixed reference set before it replaces the champion.

* :mod:`~posterml.registry.rule`: every limit a model must keep to serve, declared once;
* :mod:`~posterml.registry.champion`: the candidate both ``register`` doors judge (the best
  trustworthy balanced run), the alias move, and ``register`` by validation F1;
* :mod:`~posterml.registry.reference`: a version scored on the reference set as served;
* :mod:`~posterml.registry.promotion`: ``register --reference`` and rollback;
* :mod:`~posterml.registry.model_source`: can a model URI be loaded from here?
"""

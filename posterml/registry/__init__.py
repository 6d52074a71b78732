"""The model registry: which run is registered, which version serves (``@champion``), and
how a new version proves itself before it replaces the champion.

* :mod:`~posterml.registry.promotion`: both doors of ``posterml register`` (by validation
  F1, and ``--reference``): does the candidate replace the champion?
* :mod:`~posterml.registry.rule`: every limit a model must keep to serve, declared once;
* :mod:`~posterml.registry.candidate`: the one candidate both doors judge (the best
  trustworthy balanced run on the latest data);
* :mod:`~posterml.registry.versions`: versions and aliases: register a run's model, the one
  alias move (``make_champion``), ``rollback``;
* :mod:`~posterml.registry.reference`: a version scored on the reference set as served;
* :mod:`~posterml.registry.model_source`: can a model URI be loaded from here?
"""

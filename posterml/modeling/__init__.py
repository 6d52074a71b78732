"""The modeling layer: one runner that every model family plugs into.

``settings`` (the knobs: shared ones plus one dataclass per family), ``families`` (the
plug-ins), ``inputs`` (posters -> model inputs per split), ``fitting`` (classifier +
decision layer, honestly validated), ``evaluate`` (metrics and the baseline check),
``study`` (Optuna), ``report`` (what a run logs to MLflow), ``run`` (the orchestration),
``cli`` (the entry points' flags), ``entry_points`` (``python -m experiments.run NAME``),
``mlproject`` (MLproject, generated from ``settings`` and the commands' parsers) and
``compare``.

This package imports nothing itself, so importing one module loads only what it needs.
"""

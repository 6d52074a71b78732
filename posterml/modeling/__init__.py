"""The experiment layer: one runner that every model family plugs into.

``config`` (the knobs: shared ones plus one dataclass per family), ``families`` (the
plug-ins), ``features`` (posters -> model inputs per split), ``fitting`` (classifier +
decision layer, honestly validated), ``evaluate`` (metrics and the baseline check),
``study`` (Optuna), ``report`` (what a run logs to MLflow), ``run`` (the orchestration),
``cli`` (the entry points' command line) and ``compare``.

This package imports nothing itself, so importing one module loads only what it needs.
"""

"""What a model must show before it serves: every limit, declared once (``RULE``).

Both doors of ``posterml register`` judge with the one ``PromotionRule``:

* every candidate, on its validation metrics (``trust_problems``): it beats the trivial
  baseline, asserts at most ``max_genres_excess`` more genres per poster than the truth has,
  and predicts no genre more than ``max_overprediction`` times as often as it occurs. A run
  that fails is never registered by either door;
* with ``--reference``, the registered version on the reference posters (``thresholds``,
  judged by ``mlflow.validate_evaluation_results`` in ``judge``): F1 against the champion
  (or the baseline), and genres per poster within ``max_genres_excess`` above and
  ``max_genres_shortfall`` below the truth.

Genres per poster are measured in one unit on both: how far the asserted genres per poster
are above or below the true genres per poster, as a fraction of the truth (0.25: a quarter
more genres than the posters have; ``genres_excess`` and ``genres_shortfall`` in
``posterml.evaluation.metrics``, which the reference metrics use too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
from mlflow.models import MetricThreshold
from mlflow.models.evaluation import EvaluationResult
from mlflow.models.evaluation.validation import ModelValidationFailedException

from posterml.evaluation.metrics import HEADLINE_AVERAGES, genres_excess
from posterml.names import BEATS_BASELINE_TAG, REFERENCE_PREFIX

if TYPE_CHECKING:
    from posterml.registry.reference import ReferenceScore


@dataclass(frozen=True)
class PromotionRule:
    """The limits a model must keep to serve (see the module docstring for where each bites).

    ``max_genres_excess`` and ``max_overprediction`` keep out a model that labels everything,
    whatever its F1 (the served model that called 46% of posters "TV Movie"). Fewer genres
    than the truth is what the precision floor does (the rest goes to maybe): only the
    reference check bounds it, by ``max_genres_shortfall``. On the reference set, F1 may dip
    below the champion's by ``f1_tolerance`` (retraining noise on a few hundred posters),
    vintage F1 (the dealer's stock) not at all, and the first champion must beat "Drama +
    Comedy for every poster" by ``beat_baseline_by``."""

    max_genres_excess: float = 0.25
    max_genres_shortfall: float = 0.40
    max_overprediction: float = 2.0
    f1_tolerance: float = 0.01
    beat_baseline_by: float = 0.01

    def trust_problems(self, run) -> list[str]:
        """Why a run's model should not be served ([] when it may be), from its validation
        metrics. It judges the asserted ``genres``, which the decision statistics describe;
        ``maybe`` is advice for a person."""
        m, problems = run.data.metrics, []
        if run.data.tags.get(BEATS_BASELINE_TAG) != "true":
            problems.append("does not beat the 2-most-frequent-genres baseline")
        predicted, true = m.get("val_genres_per_poster"), m.get("val_true_genres_per_poster")
        if predicted is None or not true:
            problems.append("has no decision statistics (logged before the decision layer)")
        elif genres_excess(predicted, true) > self.max_genres_excess:
            problems.append(f"predicts {predicted:.2f} genres per poster against {true:.2f} true")
        worst = m.get("val_max_overprediction")
        if worst is not None and worst > self.max_overprediction:
            genre = run.data.tags.get("most_overpredicted_val", "a genre")
            problems.append(f"predicts {genre} {worst:.1f}x as often as it occurs")
        return problems

    def thresholds(
        self, champion: ReferenceScore | None, reference: ReferenceScore
    ) -> dict[str, MetricThreshold]:
        """``MetricThreshold``s on ``reference_*`` metrics the candidate must meet.

        Against a champion: micro and samples F1 at most ``f1_tolerance`` below it, pre-1980
        micro F1 not below it (when the reference has vintage posters). Without one: micro
        and samples F1 at least ``beat_baseline_by`` above Drama + Comedy. Always: genres per
        poster at most ``max_genres_excess`` above the truth and ``max_genres_shortfall``
        below it. ``reference`` (the candidate's score) holds the baseline."""
        p = REFERENCE_PREFIX
        rules = {
            f"{p}_genres_per_poster_excess": (self.max_genres_excess, False),
            f"{p}_genres_per_poster_shortfall": (self.max_genres_shortfall, False),
        }
        if champion is None:
            for average in HEADLINE_AVERAGES:
                base = reference.get(f"baseline_f1_{average}")
                rules[f"{p}_f1_{average}"] = (base + self.beat_baseline_by, True)
        else:
            for average in HEADLINE_AVERAGES:
                rules[f"{p}_f1_{average}"] = (
                    champion.get(f"f1_{average}") - self.f1_tolerance,
                    True,
                )
            vintage = champion.get("f1_micro_pre1980")
            if vintage is not None:
                rules[f"{p}_f1_micro_pre1980"] = (vintage, True)
        return {
            name: MetricThreshold(threshold=round(float(value), 6), greater_is_better=better)
            for name, (value, better) in rules.items()
        }

    def judge(
        self, candidate: ReferenceScore, champion: ReferenceScore | None
    ) -> tuple[bool, list[str], dict[str, MetricThreshold]]:
        """(passed, MLflow's failure lines, the thresholds) for a candidate's reference
        score."""
        thresholds = self.thresholds(champion, candidate)
        metrics = {k: v for k, v in candidate.metrics.items() if v is not None}
        try:
            mlflow.validate_evaluation_results(thresholds, EvaluationResult(metrics, {}, run_id=""))
        except ModelValidationFailedException as exc:
            lines = [line.strip() for line in str(exc.message).splitlines() if line.strip()]
            return False, lines, thresholds
        return True, [], thresholds


RULE = PromotionRule()

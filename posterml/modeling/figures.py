"""What a run logs as figures: per-genre F1, F1 by decade and the Optuna search history."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to MLflow, never to a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from posterml.genres import GENRES, genre_slug  # noqa: E402


def per_genre_f1_figure(metrics: dict[str, float], splits: list[str], title: str) -> Figure:
    """Grouped horizontal bars: F1 per genre for each split, with the test split's support
    (the posters each bar rests on) in the labels, or the first split's without a test."""
    fig, ax = plt.subplots(figsize=(9, 8), constrained_layout=True)
    height = 0.8 / max(len(splits), 1)
    y = np.arange(len(GENRES))
    for k, split in enumerate(splits):
        values = [metrics.get(f"{split}_f1_{genre_slug(g)}", 0.0) for g in GENRES]
        ax.barh(y + k * height, values, height=height, label=split)
    shown = "test" if "test" in splits or not splits else splits[0]
    labels = [
        f"{g} ({shown} n={int(metrics.get(f'{shown}_support_{genre_slug(g)}', 0))})" for g in GENRES
    ]
    ax.set_yticks(y + height * (len(splits) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def optuna_figures(study, objective: str = "Objective Value") -> dict[str, Figure]:
    """Optimisation history, and parameter importances when the study allows computing them."""
    import warnings

    import optuna.visualization.matplotlib as ovm
    from optuna.exceptions import ExperimentalWarning

    figures = {}
    # Optuna's plots switch matplotlib to its ggplot style globally: keep that to these two.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        ax = ovm.plot_optimization_history(study, target_name=objective)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials
        figures["optuna_history.png"] = ax.figure
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
            try:
                ax = ovm.plot_param_importances(study)
                figures["optuna_param_importances.png"] = ax.figure
            except (RuntimeError, ValueError, ZeroDivisionError):
                pass  # e.g. every trial scored the same: importances are undefined
    for fig in figures.values():
        fig.set_size_inches(8, 5)
        fig.tight_layout()
    return figures


def f1_by_decade_figure(metrics: dict[str, float], prefix: str, title: str) -> Figure:
    """F1 (micro, weighted, samples) per decade of release, solid, beside the baseline's,
    dashed: the modern-to-vintage question as a curve. Decades are labelled with their
    poster counts, since a decade of 30 posters moves by chance."""
    from posterml.evaluation.metrics import DECADE_AVERAGES

    decades = sorted(
        int(k.rsplit("_", 1)[-1][:-1]) for k in metrics if k.startswith(f"{prefix}_n_")
    )
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    x = np.arange(len(decades))
    for average, color in zip(DECADE_AVERAGES, ("C0", "C1", "C2"), strict=True):
        model = [metrics.get(f"{prefix}_f1_{average}_{d}s", np.nan) for d in decades]
        base = [metrics.get(f"{prefix}_baseline_f1_{average}_{d}s", np.nan) for d in decades]
        ax.plot(x, model, "o-", color=color, label=f"model, {average}")
        ax.plot(x, base, "--", color=color, alpha=0.6, label=f"baseline, {average}")
    counts = [int(metrics.get(f"{prefix}_n_{d}s", 0)) for d in decades]
    ax.set_xticks(x, [f"{d}s\n(n={n})" for d, n in zip(decades, counts, strict=True)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.grid(alpha=0.3)
    ax.legend(ncol=3, fontsize="small", loc="upper left")
    ax.set_title(title + "\n(dashed: the 2 most frequent training genres for every poster)")
    return fig

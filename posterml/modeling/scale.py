"""Which SVM head a run can afford, decided from the number of posters before any work.

The exact RBF SVM (``posterml.classifiers.svm``) is the recipe's head while its kernels fit in
memory; above ``max_exact_posters`` training posters a run switches to the Nystroem head
(``posterml.classifiers.nystroem``) and says so. When even that does not fit the memory at hand,
the run stops before feature extraction with one line saying what to do.

The byte counts are the arrays a run holds at its peak, from the code (and checked against
``python -m benchmarks.scale_training``): they are estimates, meant to stop a run that
would surely be killed, not to squeeze a machine to its last gigabyte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEADS = ("auto", "exact", "nystroem")
# 10,000 training posters: ~5.4 GB of kernels (below), comfortably inside a 24 GiB machine
# shared with other jobs; 20,000 would need ~22 GB.
EXACT_MAX_POSTERS = 10_000
NYSTROEM_COMPONENTS = 2000
# A run's own baseline: Python, TensorFlow and the backbone loaded for feature extraction.
BASE_BYTES = 2 * 2**30
# The distance cache keeps train x train, val x train, dev x dev and every fold's matrices
# (float64, ~5.8 dev^2 in all at 5 folds), and a fit adds its exp kernel (1 dev^2).
EXACT_KERNELS_PER_POSTER2 = 6.8 * 8
# Per mapped row of a linear fit: the float64 features and liblinear's own copy of them as
# (index, value) pairs: 8 + 16 bytes per component.
NYSTROEM_BYTES_PER_COMPONENT = 24
# Feature rows held at once: every split, train+val joined, and a fold's training rows.
FEATURE_COPIES = 2.8


class TooLargeError(RuntimeError):
    """The data set is too large for this machine's memory: the message says what to do."""


@dataclass(frozen=True)
class HeadPlan:
    """The head a run will fit, why, and the memory it expects to need."""

    head: str
    reason: str
    need_gib: float
    switched: bool = False

    def tags(self) -> dict[str, str]:
        """The MLflow tags that record the choice."""
        return {"svm_head": self.head, "svm_head_reason": self.reason}


def run_bytes(
    head: str,
    n_dev: int,
    n_total: int,
    n_features: int,
    n_components: int,
    feature_sets: int = 1,
) -> int:
    """Estimated peak bytes of a run fitting ``head`` on ``n_dev`` train+val posters, with
    ``n_total`` posters' ``n_features``-wide features in memory; ``feature_sets`` picture
    views (2 with the detail view's crops), each with its own features and kernels."""
    features = FEATURE_COPIES * n_total * n_features * 4
    if head == "exact":
        model = EXACT_KERNELS_PER_POSTER2 * n_dev**2
    else:
        model = NYSTROEM_BYTES_PER_COMPONENT * n_dev * n_components
    return int(BASE_BYTES + feature_sets * (features + model))


def available_memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    """Memory the kernel says a new process can use now (``MemAvailable``), in GiB; inf
    where ``/proc/meminfo`` does not say (not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 2**30
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


def plan_head(
    n_dev: int,
    n_total: int,
    n_features: int,
    head: str = "auto",
    max_exact_posters: int = EXACT_MAX_POSTERS,
    n_components: int = NYSTROEM_COMPONENTS,
    memory_gib: float = 0.0,
    feature_sets: int = 1,
) -> HeadPlan:
    """The head for ``n_dev`` training posters (train+val): ``head`` if pinned, else exact
    up to ``max_exact_posters`` and Nystroem above. ``memory_gib`` (0: what is available
    now) bounds the estimate, counting ``feature_sets`` picture views (``run_bytes``); over
    it, ``TooLargeError`` with what to do."""
    if head not in HEADS:
        raise ValueError(f"svm_head={head!r}: use one of {HEADS}")
    switched = head == "auto" and n_dev > max_exact_posters
    chosen = "nystroem" if switched else "exact" if head == "auto" else head
    if switched:
        reason = (
            f"{n_dev:,} training posters > max_exact_posters={max_exact_posters:,}: Nystroem "
            f"head ({n_components} components), the exact kernel would need "
            f"~{8 * n_dev**2 / 2**30:.1f} GiB"
        )
    elif head == "auto":
        reason = f"{n_dev:,} training posters <= max_exact_posters={max_exact_posters:,}"
    else:
        reason = f"svm_head={head} (pinned)"
    need = run_bytes(chosen, n_dev, n_total, n_features, n_components, feature_sets) / 2**30
    budget = memory_gib or available_memory_gib()
    if need > budget:
        fits = _posters_that_fit(
            chosen, n_dev, n_total, n_features, n_components, budget, feature_sets
        )
        raise TooLargeError(
            f"{n_total:,} posters need ~{need:.1f} GiB to train the {chosen} head, "
            f"{budget:.1f} GiB available: pass max_posters={fits:,} (or fewer), or train on a "
            "machine with more memory"
            + (" (or svm_head=auto, which switches to Nystroem)" if chosen == "exact" else "")
        )
    return HeadPlan(chosen, reason, need, switched)


def _posters_that_fit(
    head: str,
    n_dev: int,
    n_total: int,
    n_features: int,
    n_components: int,
    budget_gib: float,
    feature_sets: int = 1,
) -> int:
    """The largest ``max_posters`` whose estimate fits ``budget_gib`` (same dev share)."""
    share = n_dev / max(n_total, 1)
    low, high = 0, n_total
    while low < high:
        mid = (low + high + 1) // 2
        need = run_bytes(head, int(mid * share), mid, n_features, n_components, feature_sets)
        low, high = (mid, high) if need <= budget_gib * 2**30 else (low, mid - 1)
    return low

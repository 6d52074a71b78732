"""What the benchmarks and research experiments share: the real posters, the CPU, the SVM.

Timings depend on the CPU (the Lite0 pass is ~5x faster with AVX-512), so every benchmark
that prints a time prints ``cpu_kind()`` beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from posterml.evaluation.audit import DEFAULT_C, DEFAULT_GAMMA_SCALE

REPO = Path(__file__).resolve().parents[1]
# The 5,533 real posters beside the project (never committed: see ../shared/README.md).
SHARED_POSTERS = REPO.parent / "shared" / "posters"

# The recipe's SVM at fixed parameters, for experiments that compare inputs, not heads: the
# label audit's, chosen for the same reason (an experiment on inputs should not cost a search).
RECIPE_SVM = {"C": DEFAULT_C, "gamma_scale": DEFAULT_GAMMA_SCALE, "class_weight": "balanced"}
# The small grid the research experiments search the SVM over (best val weighted F1).
SVM_GRID = {"C": (0.25, 0.5, 1.0, 2.0), "gamma_scale": (0.25, 0.5, 1.0, 2.0)}


def cpu_kind() -> str:
    """``AVX-512`` or ``AVX2 only`` (what the timings depend on), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    return "AVX-512" if "avx512f" in flags else "AVX2 only" if "avx2" in flags else "no AVX2"


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), its kind and the usable cores."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {cpu_kind()}, {os.cpu_count()} cores"

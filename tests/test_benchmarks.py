"""Every script still runs: ``--help`` and ``--smoke`` of each module in ``benchmarks/`` (the
performance benchmarks) and ``research/`` (the research experiments).

Modules are found with pkgutil, so a script added later is covered without touching this
file, and an import that moved fails here instead of months later in someone's terminal.
Each runs as a user runs it (``python -m benchmarks.NAME``, ``python -m research.NAME`` from
the repository root) in a
subprocess, with a throwaway tracking store; the session's posterml cache (``conftest``)
holds what the smoke runs share: the synthetic set, its features and the smoke model.
"""

from __future__ import annotations

import os
import pkgutil
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("benchmarks", "research")
# The folders, not the packages: the repository root need not be on sys.path under pytest.
# Each script by its module path, "benchmarks.load" or "research.views".
SCRIPTS = sorted(
    f"{folder}.{module.name}"
    for folder in FOLDERS
    for module in pkgutil.iter_modules([str(REPO / folder)])
    if not module.name.startswith("_")
)
# Smoke runs quick enough for `make test` (a few seconds on 2 busy cores); every other one
# trains models or starts a server, a tracking server or Spark (10-100 s each) and is slow.
QUICK_SMOKE = {"benchmarks.training"}
SPARK = {"benchmarks.batch"}
# Benchmarks whose smoke run has its own test, checking more than the output (files, runs).
OWN_SMOKE_TEST = {"research.vintage_curve": "test_vintage_curve.py"}
# A line each smoke run prints when it measured something; a new benchmark gets the
# generic check (some output with a number in it) until it is listed here.
EXPECTED = {
    "benchmarks.batch": "posterml predict:",
    "benchmarks.features": "| backbone |",
    "benchmarks.load": "latency p50 / p95",
    "benchmarks.request_cost": "in-process request",
    "benchmarks.scale_training": "fit process:",
    "benchmarks.screenshots": "screenshots: all checks passed",
    "benchmarks.served": "all, without year",
    "benchmarks.serving": "throughput",
    "benchmarks.training": "| training posters |",
    "research.audit": "| drop top suspects |",
    "research.backbones": "F1 differences from",
    "research.priors": "EM-estimated rates",
    "research.quality": "baseline: 2 most frequent genres",
    "research.representations": "Differences from the SVM with the same decision data",
    "research.views": "CPU ms per poster",
}
# The last line, for benchmarks whose last line is their figures (scripts read it).
LAST_LINE = {
    "benchmarks.load": r"^clients=\d+ .*p50_ms=\S+ .*p50_ratio=\d+\.\d+ errors=0$",
    "benchmarks.request_cost": (
        r"^request_cpu_ms=\S+ forward_cpu_ms=\S+ .*cost_ratio=\S+ .*batch_ratio=\S+$"
    ),
    "benchmarks.scale_training": r"^n=\d+ fit_s=\d+\.\d peak_rss_gib=\d+\.\d\d$",
}
SMOKE_PARAMS = [
    pytest.param(
        name,
        marks=[pytest.mark.slow] * (name not in QUICK_SMOKE)
        + [pytest.mark.spark] * (name in SPARK),
    )
    for name in SCRIPTS
    if name not in OWN_SMOKE_TEST
]
HELP_TIMEOUT_S = 120
SMOKE_TIMEOUT_S = 300  # slowest: Spark, first to train the smoke model, 40-85 s (2 busy cores)
INTERRUPT_GRACE_S = 30
TAIL_CHARS = 4000


def run_script(name: str, tmp_path: Path, *args: str, timeout: float) -> str:
    """``python -m NAME ARGS`` (NAME: ``benchmarks.load``) from the repository root with a
    throwaway tracking store; its stdout, after checking it exited 0 (the output tails are the
    failure)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    process = subprocess.Popen(
        [sys.executable, "-m", name, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timed_out = False
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        # Ctrl-C, not a kill: the benchmark's finally blocks stop the servers it started
        # (in their own process groups, a kill would leave them running).
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    status = f"did not finish in {timeout:.0f} s" if timed_out else f"exited {process.returncode}"
    assert not timed_out and process.returncode == 0, (
        f"{name} {' '.join(args)} {status}\n"
        f"--- stdout\n{out[-TAIL_CHARS:]}\n--- stderr\n{err[-TAIL_CHARS:]}"
    )
    return out


def test_scripts_found() -> None:
    """Discovery works (an empty list would make every other test here vacuous)."""
    assert {"benchmarks.training", "benchmarks.serving", "research.views"} <= set(SCRIPTS)
    for name, test_file in OWN_SMOKE_TEST.items():
        assert name in SCRIPTS and (REPO / "tests" / test_file).is_file(), name


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name: str, tmp_path: Path) -> None:
    out = run_script(name, tmp_path, "--help", timeout=HELP_TIMEOUT_S)
    assert out.startswith("usage:") and "--smoke" in out


@pytest.mark.parametrize("name", SMOKE_PARAMS)
def test_smoke(name: str, tmp_path: Path) -> None:
    before = set(REPO.iterdir())
    out = run_script(name, tmp_path, "--smoke", timeout=SMOKE_TIMEOUT_S)
    assert re.search(r"\d", out), f"{name} --smoke printed no numbers:\n{out}"
    if name in EXPECTED:
        assert EXPECTED[name] in out, f"no {EXPECTED[name]!r} in:\n{out[-TAIL_CHARS:]}"
    if name in LAST_LINE:
        last = out.strip().splitlines()[-1]
        assert re.match(LAST_LINE[name], last), f"last line {last!r} is not {LAST_LINE[name]}"
    # Outputs go to temp folders and the throwaway store, never the working tree.
    assert set(REPO.iterdir()) == before

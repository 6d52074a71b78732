"""conda.yaml mirrors pyproject.toml; MLproject entry points match the scripts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_mirrors_pyproject_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(declared)
    assert "python=3.11.7" in conda["dependencies"]


def test_every_entry_point_has_its_thin_script():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    expected = {
        "main",
        "ensemble",
        "finetune",
        "pca_classic",
        "scratch_cnn",
        "resnet_svm",
        "resnet_mlp",
        "colors",
        "fetch_tmdb",
        "compare",
        "register",
        "batch_score",
    }
    assert set(project["entry_points"]) == expected
    for name, entry in project["entry_points"].items():
        assert f"python -m experiments.{name}" in entry["command"]
        assert (ROOT / "experiments" / f"{name}.py").is_file()
        for param in entry["parameters"]:
            assert "{" + param + "}" in entry["command"], (name, param)
    assert "api_key" not in str(project["entry_points"]["fetch_tmdb"]["parameters"])


def test_experiment_parameters_match_the_config():
    """Every experiment entry point takes every ``ExperimentConfig`` knob, with the config's
    default unless it deliberately differs (``main`` is the shipped recipe)."""
    import dataclasses

    from posterml.runner import RECOMMENDED, ExperimentConfig

    project = yaml.safe_load((ROOT / "MLproject").read_text())
    overrides = {
        "main": {k: v for k, v in RECOMMENDED.items() if k != "family"},
        "resnet_mlp": {"epochs": 100},
        "ensemble": {"epochs": 100},
        "finetune": {"backbone": "efficientnet_lite0", "n_trials": 3, "epochs": 15, "cv_folds": 0},
    }
    fields = [
        f
        for f in dataclasses.fields(ExperimentConfig)
        if f.name not in ("family", "experiment", "log_model")
    ]
    for name in ("main", "resnet_svm", "resnet_mlp", "ensemble", "finetune", "pca_classic"):
        parameters = project["entry_points"][name]["parameters"]
        assert set(parameters) == {f.name for f in fields}, name
        for field in fields:
            want = overrides.get(name, {}).get(field.name, field.default)
            got = parameters[field.name]["default"]
            if isinstance(want, bool):
                got = {"true": True, "false": False}[str(got)]
            elif isinstance(want, int | float):
                got = float(got)
            assert got == want, (name, field.name, got, want)

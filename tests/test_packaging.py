"""conda.yaml and python_env.yaml mirror pyproject.toml; MLproject entry points match the
scripts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_mirrors_pyproject_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(declared)
    assert "python=3.11.7" in conda["dependencies"]


def test_python_env_mirrors_pyproject_and_conda():
    """``mlflow run --env-manager virtualenv|uv`` gets what conda and pip installs get."""
    from mlflow.utils.environment import _PythonEnv

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    python_env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert set(python_env) == {"python", "build_dependencies", "dependencies"}
    assert sorted(python_env["dependencies"]) == sorted(declared)
    assert python_env["python"] == "3.11.7"
    # MLflow's own readers see one environment in both files (it converts conda.yaml into
    # this form when a conda_env project runs under virtualenv or uv).
    from_python_env = _PythonEnv.from_yaml(str(ROOT / "python_env.yaml")).to_dict()
    assert from_python_env == _PythonEnv.from_conda_yaml(str(ROOT / "conda.yaml")).to_dict()


# Entry points that run the experiment runner (their parameters are the config dataclasses').
EXPERIMENTS = {
    "main": "resnet_svm",
    "resnet_svm": "resnet_svm",
    "resnet_mlp": "resnet_mlp",
    "ensemble": "ensemble",
    "finetune": "finetune",
    "pca_classic": "pca_classic",
    "scratch_cnn": "scratch_cnn",
    "compare": None,
}


def test_mlproject_is_generated_from_the_settings_and_parsers():
    """MLproject is what ``python -m posterml.modeling.mlproject`` writes: a knob added to a
    dataclass or a flag to a command reaches ``mlflow run`` or fails here."""
    from posterml.modeling.mlproject import render

    assert (ROOT / "MLproject").read_text() == render(), "MLproject is stale: make mlproject"


def test_every_entry_point_runs_a_script_that_exists():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    expected = set(EXPERIMENTS) | {"colors", "fetch_tmdb", "register", "batch_score"}
    assert set(project["entry_points"]) == expected
    for name, entry in project["entry_points"].items():
        words = entry["command"].split()
        assert words[:2] == ["python", "-m"]
        assert (ROOT / (words[2].replace(".", "/") + ".py")).is_file(), name
        if name in EXPERIMENTS:
            assert words[3] == name
        # Every parameter reaches the command, as a flag or the positional.
        for param in entry["parameters"]:
            assert f"{{{param}}}" in entry["command"], (name, param)
    assert "api_key" not in str(project["entry_points"]["fetch_tmdb"])


def test_mlflow_substitutes_values_the_scripts_read_back():
    """MLflow's own substitution (shell-quoted: '' for an empty default, a path with a space)
    gives the script the values the user passed."""
    import shlex

    from mlflow.projects._project_spec import load_project

    from posterml.modeling.cli import parse_config

    project = load_project(str(ROOT))
    entry = project.get_entry_point("resnet_svm")
    given = {"data": "/tmp/my posters", "study_name": "", "n_trials": "3", "backbone": "x'y"}
    command = entry.compute_command(given, storage_dir=None)
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "experiments.run", "resnet_svm"]
    config = parse_config("resnet_svm", argv[4:])
    assert config.data == "/tmp/my posters" and config.study_name == ""
    assert config.n_trials == 3 and config.options.backbone == "x'y"
    assert config.options.class_weight == "search"  # the entry point's default


def test_whole_numbers_reach_the_command_as_whole_numbers():
    """``-P n_trials=5`` runs ``--n-trials 5``, and the default of every whole-number flag is
    substituted without a decimal point: MLflow has no integer type, so none is ``float``."""
    import shlex

    from mlflow.projects._project_spec import load_project

    from posterml.modeling.mlproject import entry_points

    project = load_project(str(ROOT))
    argv = shlex.split(project.get_entry_point("main").compute_command({"n_trials": "5"}, None))
    assert argv[argv.index("--n-trials") + 1] == "5"
    spec = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    whole = 0
    for entry in entry_points():
        parser = entry.parser()
        for action in parser._actions:
            default = action.default
            if action.dest not in spec[entry.name]["parameters"] or isinstance(default, bool):
                continue
            if isinstance(default, int) and action.type is not float:
                whole += 1
                declared = spec[entry.name]["parameters"][action.dest]
                assert declared == {"type": "string", "default": default}, (entry.name, declared)
                command = project.get_entry_point(entry.name).compute_command(
                    {"source": "posters/"} if entry.name == "batch_score" else {}, None
                )
                argv = shlex.split(command)
                assert argv[argv.index(action.option_strings[-1]) + 1] == str(default)
    assert whole >= 10  # seeds, trials, folds, epochs...


def test_experiment_parameters_match_the_config():
    """Every experiment entry point takes the shared knobs and its family's, with the
    dataclasses' defaults unless ``ENTRY_POINT_DEFAULTS`` says otherwise (``main`` is the
    shipped recipe); a family's entry point has no knob that does not apply to it."""
    import dataclasses

    from posterml.modeling.families import family_class
    from posterml.modeling.settings import ENTRY_POINT_DEFAULTS, CompareOptions, shared_knobs

    project = yaml.safe_load((ROOT / "MLproject").read_text())
    for name, family in EXPERIMENTS.items():
        options = family_class(family).options_class if family else CompareOptions
        fields = shared_knobs() + list(dataclasses.fields(options))
        parameters = project["entry_points"][name]["parameters"]
        assert set(parameters) == {f.name for f in fields}, name
        for field in fields:
            want = ENTRY_POINT_DEFAULTS.get(name, {}).get(field.name, field.default)
            got = parameters[field.name]["default"]
            if isinstance(want, bool):
                got = {"true": True, "false": False}[str(got)]
            elif isinstance(want, int | float):
                got = float(got)
            assert got == want, (name, field.name, got, want)


@pytest.mark.parametrize("name", [*EXPERIMENTS, "colors", "fetch_tmdb", "register", "batch_score"])
def test_every_default_command_parses(name):
    """Each entry point's command, as MLflow builds it from the defaults, is one its parser
    takes: no flag it lacks, no default it refuses."""
    import shlex

    from mlflow.projects._project_spec import load_project

    from posterml.modeling.mlproject import entry_points

    entry = load_project(str(ROOT)).get_entry_point(name)
    given = {"source": "posters/"} if name == "batch_score" else {}
    argv = shlex.split(entry.compute_command(given, storage_dir=None))
    args = argv[4:] if argv[2] == "experiments.run" else argv[3:]
    parser = {e.name: e for e in entry_points()}[name].parser()
    parsed = vars(parser.parse_args(args))
    assert parsed, name


@pytest.mark.parametrize(
    "script", ["run resnet_svm", "colors", "fetch_tmdb", "register", "batch_score"]
)
def test_every_entry_point_script_runs_as_a_module(script):
    """``python -m experiments.X --help`` from the project folder, as MLflow runs them."""
    import subprocess
    import sys

    name, *entry = script.split()
    done = subprocess.run(
        [sys.executable, "-m", f"experiments.{name}", *entry, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "--" in done.stdout

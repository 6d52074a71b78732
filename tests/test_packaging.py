"""conda.yaml and python_env.yaml mirror pyproject.toml; MLproject entry points match the
scripts."""

from __future__ import annotations

import argparse
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


def _parser_of(entry: str) -> argparse.ArgumentParser:
    """The argparse parser the entry point's script reads its parameters with."""
    if entry == "colors":
        from experiments.colors import build_parser

        return build_parser()
    if entry == "fetch_tmdb":
        from posterml.commands.fetch_tmdb import build_parser

        return build_parser()
    if entry == "register":
        from posterml.commands.register import add_register_arguments

        return add_register_arguments(argparse.ArgumentParser())
    from posterml.commands.batch_score import add_parser

    return add_parser(argparse.ArgumentParser().add_subparsers())


def test_every_entry_point_has_its_thin_script():
    """Every command is its thin script reading the run's parameters back; every parameter of
    the other entry points is a flag (or the positional) their script's parser knows."""
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    expected = set(EXPERIMENTS) | {"colors", "fetch_tmdb", "register", "batch_score"}
    assert set(project["entry_points"]) == expected
    for name, entry in project["entry_points"].items():
        assert entry["command"] == f"python -m experiments.{name} --params-from-run"
        assert (ROOT / "experiments" / f"{name}.py").is_file()
        if name in EXPERIMENTS:
            continue
        parser = _parser_of(name)
        flags = {o for action in parser._actions for o in action.option_strings}
        positionals = {a.dest for a in parser._actions if not a.option_strings}
        for param in entry["parameters"]:
            assert f"--{param.replace('_', '-')}" in flags or f"{param}s" in positionals, (
                name,
                param,
            )
    assert "api_key" not in str(project["entry_points"]["fetch_tmdb"]["parameters"])


def test_mlproject_stays_small():
    assert (ROOT / "MLproject").stat().st_size < 5000


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

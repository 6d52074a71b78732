"""Entry-point arguments arrive as MLflow passes them: all text, numbers maybe as floats."""

from __future__ import annotations

import pytest

from posterml.modeling.cli import parse_config


def test_mlproject_style_values_parse():
    config = parse_config(
        "resnet_svm",
        [
            "--seed",
            "42.0",
            "--tune-thresholds",
            "false",
            "--timeout",
            "0",
            "--train-years",
            "2010-2019",
        ],
    )
    assert config.seed == 42 and config.tune_thresholds is False
    assert config.timeout == 0.0 and config.train_years == "2010-2019"
    assert config.family == "resnet_svm" and config.study_name == ""


@pytest.mark.parametrize("flag, value", [("--seed", "4.5"), ("--min-one-genre", "maybe")])
def test_bad_values_are_refused_by_name(flag, value, capsys):
    with pytest.raises(SystemExit):
        parse_config("resnet_svm", [flag, value])
    assert value in capsys.readouterr().err


def test_a_knob_of_another_family_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_config("resnet_svm", ["--image-size", "48x32"])
    assert "--image-size" in capsys.readouterr().err


def test_a_storage_password_never_reaches_the_params():
    from posterml.modeling.cli import experiment_config

    config = experiment_config("resnet_svm", storage="postgresql://u:s3cret@db/optuna")
    assert "s3cret" not in str(config.params())
    assert config.params()["storage"] == "postgresql://u:***@db/optuna"


@pytest.mark.parametrize("argv", [[], ["nope"], ["--data", "synthetic"]])
def test_experiments_run_names_its_entry_points_when_none_is_given(argv, capsys):
    from posterml.modeling.entry_points import run_entry_point

    assert run_entry_point(argv) == 2
    err = capsys.readouterr().err
    assert "usage: python -m experiments.run NAME" in err and "resnet_svm" in err


def test_mlproject_check_says_current(capsys):
    from posterml.modeling.mlproject import main

    assert main(["--check"]) == 0
    assert capsys.readouterr().out.strip() == "MLproject is current"

"""Entry-point arguments arrive as MLflow passes them: all text, numbers maybe as floats."""

from __future__ import annotations

import pytest

from posterml.runner import parse_config


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
    assert config.family == "resnet_svm" and config.study_name == "new"


@pytest.mark.parametrize("flag, value", [("--seed", "4.5"), ("--min-one-genre", "maybe")])
def test_bad_values_are_refused_by_name(flag, value, capsys):
    with pytest.raises(SystemExit):
        parse_config("resnet_svm", [flag, value])
    assert value in capsys.readouterr().err

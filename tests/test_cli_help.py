"""``posterml --help`` speaks to the dealer and the experimenter, in plain text."""

from __future__ import annotations

import argparse

from posterml.cli import build_parser


def _helps() -> dict[str, str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"posterml": parser.format_help()} | {
        name: command.format_help() for name, command in sub.choices.items()
    }


def test_help_names_both_users_ways_in():
    top = _helps()["posterml"]
    assert "posterml predict FOLDER" in top and "MLFLOW_TRACKING_URI" in top  # the dealer
    assert "--model" in top
    assert "mlflow run . -e NAME" in top and "posterml where" in top  # the experimenter
    assert "posterml register" in top
    assert "MLFLOW_TRACKING_URI" in _helps()["predict"]


def test_help_has_no_restructuredtext_markup():
    for name, text in _helps().items():
        assert "``" not in text and ":func:" not in text, name


def test_where_lists_runs_by_their_names(tracking_uri, capsys):
    import mlflow

    from posterml.cli import main

    with mlflow.start_run(run_name="resnet_svm · posters · 1a2b3c4d"):
        mlflow.set_tag("posterml.role", "experiment")
        mlflow.log_metric("test_f1_weighted", 0.5)
    with mlflow.start_run(run_name="register · v1 is champion"):
        mlflow.set_tag("posterml.role", "register")
    assert main(["where"]) == 0
    out = capsys.readouterr().out
    assert "resnet_svm · posters · 1a2b3c4d  test_f1_weighted=0.500" in out
    assert "register · v1 is champion" in out and "nan" not in out
    assert "mlflow models serve -m models:/poster-genre-classifier@champion " in out

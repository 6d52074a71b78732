"""The team server's pieces that need no server: its secret files, the one-line refusals,
the roles and the users command's parsing. ``test_auth.py`` runs them against a real one."""

from __future__ import annotations

import io
import stat

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
)
from model_fixture import tracking_store

from posterml.team.refusals import (
    CREDENTIALS_HELP,
    model_of,
    raise_if_refused,
    refusal_line,
    refusal_of,
)
from posterml.team.roles import ROLES
from posterml.team.server_files import (
    ADMIN_PASSWORD_ENV,
    AUTHORIZATION_FUNCTION,
    TeamConfigError,
    admin_password,
    write_team_config,
)

SERVER = "http://127.0.0.1:9"  # nothing listens: no line may need the server to be asked


@pytest.fixture
def as_sam(monkeypatch, tmp_path):
    """sam's credentials, MLflow pointed at a server that is not there."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials of the developer's
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sam")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "sam-Secret-5be02d41c3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with tracking_store(SERVER):
        yield


def rest_refusal(endpoint: str, status: int = 403) -> MlflowException:
    """What MLflow's REST client raises for a 401/403 with a plain-text body."""
    code = PERMISSION_DENIED if status == 403 else UNAUTHENTICATED
    body = "Permission denied" if status == 403 else "You are not authenticated."
    return MlflowException(
        f"API request to endpoint {endpoint} failed with error code {status} != 200. "
        f"Response body: '{body}'",
        error_code=code,
    )


def artifact_refusal(method: str, path: str) -> requests.HTTPError:
    """What MLflow's artifact repository raises (``raise_for_status``) for a 403."""
    response = requests.Response()
    response.status_code = 403
    response.url = f"{SERVER}/api/2.0/mlflow-artifacts/artifacts/{path}"
    response.request = requests.Request(method, response.url).prepare()
    return requests.HTTPError("403 Client Error: Forbidden", response=response)


# --------------------------------------------------------------------------- config files
def test_team_config_is_private_and_sets_a_fresh_admin_password(tmp_path, monkeypatch):
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    config = write_team_config(tmp_path / "team")
    assert stat.S_IMODE(config.auth_config.parent.stat().st_mode) == 0o700
    for path in (config.auth_config, config.env_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = admin_password(config.auth_config)
    assert password and len(password) >= 24 and password != "password1234"
    other = write_team_config(tmp_path / "other")
    assert admin_password(other.auth_config) != password  # random, never a default
    env = dict(line.split("=", 1) for line in config.env_file.read_text().splitlines())
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(config.auth_config)
    assert len(env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) >= 32
    with pytest.raises(TeamConfigError, match="already set up"):
        write_team_config(tmp_path / "team")  # the admin exists: never rewritten

    # MLflow's own reader sees what posterml means.
    from mlflow.server.auth.config import read_auth_config

    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config.auth_config))
    read = read_auth_config()
    assert read.default_permission == "NO_PERMISSIONS"
    assert read.authorization_function == AUTHORIZATION_FUNCTION
    assert read.database_uri == f"sqlite:///{config.auth_config.parent / 'basic_auth.db'}"
    assert (read.admin_username, read.admin_password) == ("admin", password)
    assert read.auth_cache_ttl_seconds == 60


def test_the_hook_mlflow_loads_is_the_alias_guard_under_either_name():
    """New configs name ``alias_guard``; configs written before keep naming ``champion_rule``
    and must stay guarded. MLflow's own resolver turns both into the guard."""
    from mlflow.server.auth import get_auth_func

    from posterml.team.alias_guard import authenticate

    assert AUTHORIZATION_FUNCTION == "posterml.team.alias_guard:authenticate"
    assert get_auth_func(AUTHORIZATION_FUNCTION) is authenticate
    assert get_auth_func("posterml.team.champion_rule:authenticate") is authenticate


def test_admin_password_from_the_environment_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "from-the-env-0123456789")
    config = write_team_config(tmp_path / "team")
    assert not config.password_in_file and admin_password(config.auth_config) is None
    assert "from-the-env" not in config.auth_config.read_text()


# --------------------------------------------------------------------------- refusals
def test_mlflow_403s_name_the_right_from_the_endpoint(as_sam):
    cases = {
        "/api/2.0/mlflow/model-versions/create": (
            "user 'sam' may not register versions of shop-model "
            "(needs EDIT on the registered model)"
        ),
        "/api/2.0/mlflow/model-versions/get-download-uri": (
            "user 'sam' may not read shop-model (needs READ on the registered model)"
        ),
        "/api/2.0/mlflow/registered-models/delete": (
            "user 'sam' may not delete versions of shop-model "
            "(needs MANAGE on the registered model)"
        ),
        "/api/2.0/mlflow/runs/create": (
            "user 'sam' may not log runs in experiment 'posterml' (needs EDIT on the experiment)"
        ),
        "/api/2.0/mlflow/experiments/get-by-name": (
            "user 'sam' may not read experiment 'posterml' (needs READ on the experiment)"
        ),
        "/api/2.0/mlflow/users/create": (
            "user 'sam' may not manage accounts and rights (only an admin may)"
        ),
    }
    for endpoint, line in cases.items():
        refusal = refusal_of(rest_refusal(endpoint))
        assert refusal and refusal.status == 403 and refusal.endpoint == endpoint
        assert refusal_line(refusal, "shop-model", "posterml") == line


def test_an_alias_refusal_that_cannot_be_told_apart_says_read(as_sam):
    """The alias path reads and moves; with no server to ask whether the model reads fine,
    the line says READ (what posterml's commands need first)."""
    refusal = refusal_of(rest_refusal("/api/2.0/mlflow/registered-models/alias"))
    assert refusal_line(refusal, "shop-model") == (
        "user 'sam' may not read shop-model (needs READ on the registered model)"
    )


def test_artifact_refusals_name_the_experiment_from_the_path(as_sam):
    read = refusal_of(artifact_refusal("GET", "3/models/m-1/artifacts/MLmodel"))
    assert refusal_line(read) == (
        "user 'sam' may not read the model and run files of experiment 3 "
        "(needs READ on the experiment)"
    )
    wrapped = MlflowException("could not load the model")
    wrapped.__cause__ = artifact_refusal("PUT", "3/abc/artifacts/x.csv")
    assert refusal_line(refusal_of(wrapped)) == (
        "user 'sam' may not store files in experiment 3 (needs EDIT on the experiment)"
    )


def test_the_alias_guards_own_line_is_shown_as_the_server_said_it(as_sam):
    said = "user 'sam' may not move @champion of shop-model (needs MANAGE on the registered model)"
    refusal = refusal_of(RestException({"error_code": "PERMISSION_DENIED", "message": said}))
    assert refusal_line(refusal, "shop-model") == said


def test_401s_say_how_to_log_in(as_sam, monkeypatch):
    refusal = refusal_of(rest_refusal("/api/2.0/mlflow/runs/search", status=401))
    assert refusal.status == 401
    assert refusal_line(refusal) == (
        f"the tracking server {SERVER} did not accept user 'sam' (wrong password, or no such "
        f"user): {CREDENTIALS_HELP}"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    assert refusal_line(refusal) == (
        f"the tracking server {SERVER} needs a user and password: {CREDENTIALS_HELP}"
    )
    assert "sam-Secret" not in refusal_line(refusal)


def test_not_found_is_not_a_refusal():
    missing = MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST)
    assert refusal_of(missing) is None
    raise_if_refused(missing)  # passes: "not there" is the caller's to handle
    with pytest.raises(MlflowException):
        raise_if_refused(rest_refusal("/api/2.0/mlflow/runs/create"))


def test_model_of_names_the_registered_model_of_a_uri():
    assert model_of("models:/poster-genre-classifier@champion") == "poster-genre-classifier"
    assert model_of("models:/shop/3") == "shop"
    assert model_of("runs:/abc/model") is None and model_of("/some/folder") is None


# --------------------------------------------------------------------------- users command
def test_roles_give_every_person_what_their_job_needs():
    assert {name: (r.experiment, r.model) for name, r in ROLES.items()} == {
        "scientist": ("EDIT", "MANAGE"),
        "assistant": ("READ", "READ"),
        "scorer": ("READ", "READ"),
    }


def test_users_add_reads_the_password_from_stdin_never_argv(monkeypatch, capsys):
    from posterml.cli import build_parser
    from posterml.commands.users import read_password

    args = build_parser().parse_args(["users", "add", "ana", "--role", "scientist"])
    assert (args.name, args.role, args.experiment) == ("ana", "scientist", "posterml")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", "add", "ana", "--role", "boss"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", "add", "ana", "--role", "scorer", "--password", "x"])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password-1\n"))
    assert read_password("password: ") == "a-long-password-1"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ValueError, match="no password"):
        read_password("password: ")


def test_users_add_needs_the_team_server(tmp_path, monkeypatch, capsys):
    from posterml.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["users", "add", "ana", "--role", "scientist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("posterml users add: users live on the team tracking server")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_refusal_anywhere_in_a_command_is_one_line_and_exit_77(as_sam, capsys):
    """What ``posterml.cli`` and the ``register`` entry point wrap every command in."""
    from posterml.team.refusals import EXIT_REFUSED, refused_in_one_line

    def register():
        try:
            raise rest_refusal("/api/2.0/mlflow/model-versions/create")
        except MlflowException as exc:
            raise RuntimeError("could not register") from exc  # however deep it was wrapped

    assert refused_in_one_line("posterml register", register, "shop-model", "current") == 77
    assert EXIT_REFUSED == 77
    assert capsys.readouterr().err == (
        "posterml register: user 'sam' may not register versions of shop-model "
        "(needs EDIT on the registered model)\n"
    )
    assert refused_in_one_line("posterml where", lambda: 0) == 0
    with pytest.raises(ZeroDivisionError):  # anything else keeps its traceback
        refused_in_one_line("posterml where", lambda: 1 / 0)

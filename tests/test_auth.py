"""Who may do what: the team tracking server with MLflow's authentication, for real.

One ``mlflow --env-file team/server.env server --app-name basic-auth`` on 127.0.0.1 with a
throwaway sqlite store, set up as the README says: ``posterml users init`` wrote its config,
the admin made the accounts with ``posterml users add``, the scientist trained a real model
and registered it. The tests then act as each person, through posterml's commands and
MLflow's client, and check what is refused and what each refusal says.

What the module fixture leaves: ``poster-genre-classifier`` v1 and v2 (the same real model),
``@champion`` v2 and ``@previous`` v1; a finished real run, and a better-scoring run with a
tiny stand-in model logged by the EDIT user (so ``register`` has a new version to promote).
A test that moves an alias puts it back.
"""

# Fixtures are used as same-named arguments: ruff: noqa: F811
from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import mlflow.server
import pandas as pd
import pytest
import requests
from helpers import write_image
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from model_fixture import tracking_store

import posterml
from benchmarks._server import TrackingServer
from posterml.names import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    CHAMPION_URI,
    MODEL_NAME,
    PREVIOUS_ALIAS,
    ROLE_TAG,
)
from posterml.team.refusals import EXIT_REFUSED
from posterml.team.roles import ROLES, Role, add_user
from posterml.team.server_files import TeamConfig, admin_password, write_team_config
from posterml.tracking import environment

pytestmark = [pytest.mark.auth, pytest.mark.slow]
SOURCE_ROOT = Path(posterml.__file__).resolve().parents[1]  # the server imports this posterml
EXPERIMENT = "posterml"
EDITOR = Role("editor", "registers candidates, never promotes", "EDIT", "EDIT")
USERS = {  # name -> (role, password): passwords the tests look for everywhere afterwards
    "ana": (ROLES["scientist"], "ana-Secret-0fd1c9a77e"),
    "sam": (ROLES["scorer"], "sam-Secret-5be02d41c3"),
    "lea": (ROLES["assistant"], "lea-Secret-93aa7c0e6b"),
    "eddie": (EDITOR, "eddie-Secret-4c17b2e9d0"),
    "nobody": (None, "nobody-Secret-8e6f10a2b4"),  # an account with no grant at all
}


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@dataclass
class Team:
    server: TrackingServer
    root: Path
    config: TeamConfig
    admin_password: str
    versions: dict[str, str]  # alias -> version, as the fixture left them
    log: list[str] = field(default_factory=list)  # every log record while people worked
    output: str = ""  # what they printed

    def passwords(self) -> dict[str, str]:
        return {name: password for name, (_, password) in USERS.items()} | {
            "admin": self.admin_password
        }


@contextmanager
def as_user(name: str | None, password: str | None = None) -> Iterator[None]:
    """MLflow's client sends these credentials (MLFLOW_TRACKING_USERNAME/PASSWORD) inside."""
    with environment({"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}):
        yield


def as_person(name: str):
    return as_user(name, USERS[name][1])


class _Recorder(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@contextmanager
def recording(team: Team) -> Iterator[None]:
    """Every log record (DEBUG up, urllib3's request lines included) and everything printed
    from Python, kept on ``team`` for the secrets test."""
    root = logging.getLogger()
    handler, level = _Recorder(team.log), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    out = io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(out):
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        team.output += out.getvalue()


def posterml_cli(*argv: str, stdin: str | None = None) -> int:
    from posterml.cli import main

    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        return main(list(argv))
    finally:
        sys.stdin = saved


def _train_and_register(team: Team) -> None:
    """The scientist's week, on the auth server: a real run, register, a second version."""
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    with as_person("ana"):
        run_id = run_experiment(
            experiment_config(
                "resnet_svm",
                data="synthetic",
                backbone="efficientnet_lite0",
                n_trials=2,
                class_weight="balanced",
                storage=f"sqlite:///{team.root / 'optuna.db'}",
                experiment=EXPERIMENT,
            )
        )
        assert posterml_cli("register", "--experiment", EXPERIMENT) == 0
        client = MlflowClient()
        model_id = client.get_run(run_id).data.tags["model_id"]
        second = mlflow.register_model(f"models:/{model_id}", MODEL_NAME).version
        client.set_registered_model_alias(MODEL_NAME, PREVIOUS_ALIAS, "1")
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, second)
    team.versions = {CHAMPION_ALIAS: str(second), PREVIOUS_ALIAS: "1"}


def log_better_run(name: str = "stand-in") -> str:
    """A finished, trustworthy-looking parent run that beats the real one (a tiny model)."""
    with mlflow.start_run(run_name=name) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=_Constant())
        mlflow.set_tags(
            {
                ROLE_TAG: "experiment",
                "family": "resnet_svm",
                "balanced": "true",
                "model_id": info.model_id,
                "dataset": "synthetic",
                "dataset_hash": "stand-in",
                "beats_baseline": "true",
            }
        )
        mlflow.log_metrics(
            {
                "val_f1_weighted": 0.99,
                "val_genres_per_poster": 2.4,
                "val_true_genres_per_poster": 2.4,
            }
        )
    return run.info.run_id


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as patch:
        for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
            patch.delenv(key, raising=False)
        patch.setenv("HOME", str(root / "home"))  # no developer's ~/.mlflow/credentials
        config = write_team_config(root / "team")
        server = TrackingServer(
            f"sqlite:///{root / 'mlflow.db'}",
            root,
            root / "artifacts",
            cwd=root,
            auth_env=config.env_file,
            env={"PYTHONPATH": str(SOURCE_ROOT)},
        )
        team = Team(server, root, config, admin_password(config.auth_config) or "", {})
        with server, tracking_store(server.url, cwd=root):
            with recording(team):
                with as_user("admin", team.admin_password):
                    for name, (role, password) in USERS.items():
                        if role in ROLES.values():
                            argv = ("users", "add", name, "--role", role.name)
                            assert posterml_cli(*argv, stdin=password + "\n") == 0
                        elif role is not None:
                            add_user(server.url, name, password, role, EXPERIMENT, MODEL_NAME)
                        else:
                            mlflow.server.get_app_client(
                                "basic-auth", tracking_uri=server.url
                            ).create_user(name, password)
                _train_and_register(team)
                with as_person("eddie"):
                    mlflow.set_experiment(EXPERIMENT)
                    log_better_run()
            yield team


def aliases(team: Team) -> dict[str, str]:
    """The registered model's aliases, read as the admin."""
    with as_user("admin", team.admin_password):
        found = MlflowClient().get_registered_model(MODEL_NAME).aliases
    return {alias: str(version) for alias, version in found.items()}


def run_as(name: str, capfd, *argv: str, team: Team) -> tuple[int, str]:
    """``posterml ARGV`` as ``name``: (exit status, stderr); no password in anything printed."""
    capfd.readouterr()
    with as_person(name):
        code = posterml_cli(*argv)
    out, err = capfd.readouterr()
    for password in team.passwords().values():
        assert password not in out + err
    return code, err


def assert_one_line(err: str, expected: str) -> None:
    """posterml said ``expected``, in one line (MLflow's own progress lines may precede it),
    and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("posterml")]
    assert lines == [expected], err
    assert "Traceback" not in err


def write_posters(folder: Path, n: int = 3) -> Path:
    for i in range(n):
        write_image(folder / f"poster{i}.jpg", seed=i, size=(120, 180))
    return folder


# --------------------------------------------------------------------------- anonymous
def test_anonymous_and_wrong_password_requests_are_refused(team, tmp_path, capfd):
    url = team.server.url
    reads = [
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=posterml",
        f"/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias=champion",
        "/api/2.0/mlflow-artifacts/artifacts?path=1",
        "/ajax-api/2.0/mlflow/registered-models/search",
    ]
    for path in reads:
        answer = requests.get(url + path, timeout=10)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
        wrong = requests.get(url + path, auth=("ana", "not-her-password-1"), timeout=10)
        assert wrong.status_code == 401, path
    moved = requests.post(
        url + "/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL_NAME, "alias": CHAMPION_ALIAS, "version": "1"},
        timeout=10,
    )
    assert moved.status_code == 401
    assert requests.get(url + "/health", timeout=10).status_code == 200  # the one open route

    posters = write_posters(tmp_path / "scans")
    capfd.readouterr()
    with as_user(None):
        code = posterml_cli("predict", str(posters), "--out", str(tmp_path / "g.csv"))
    assert code == EXIT_REFUSED
    assert_one_line(
        capfd.readouterr().err,
        f"posterml predict: the tracking server {url} needs a user and password: set "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write them in "
        "~/.mlflow/credentials",
    )
    with as_user("ana", "not-her-password-1"):
        code = posterml_cli("rollback")
    assert code == EXIT_REFUSED
    err = capfd.readouterr().err
    assert "did not accept user 'ana' (wrong password, or no such user)" in err
    assert "not-her-password-1" not in err and "Traceback" not in err
    assert aliases(team) == team.versions


# --------------------------------------------------------------------------- READ
def test_scorer_loads_and_predicts_with_the_champion(team, tmp_path, monkeypatch, capfd):
    """The scorer's credentials come from MLflow's credentials file, not the environment."""
    home = tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    (home / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = sam\nmlflow_tracking_password = {USERS['sam'][1]}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    posters = write_posters(tmp_path / "scans")
    out = tmp_path / "genres.csv"
    capfd.readouterr()
    with as_user(None):
        code = posterml_cli("predict", str(posters), "--out", str(out), "--no-progress")
        model = mlflow.pyfunc.load_model(CHAMPION_URI)  # what `mlflow models serve` loads
    assert code == 0, capfd.readouterr().err
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(table) == 3 and table["error"].eq("").all()
    assert model.metadata.run_id


def test_scorer_cannot_register_or_move_an_alias(team, capfd):
    with as_person("sam"):
        client = MlflowClient()
        for alias in (CHALLENGER_ALIAS, CHAMPION_ALIAS):
            with pytest.raises(MlflowException) as refused:
                client.set_registered_model_alias(MODEL_NAME, alias, "1")
            assert refused.value.error_code == "PERMISSION_DENIED"
        model_id = client.get_model_version(MODEL_NAME, "1").source.removeprefix("models:/")
        with pytest.raises(MlflowException) as refused:
            mlflow.register_model(f"models:/{model_id}", MODEL_NAME)
        assert refused.value.error_code == "PERMISSION_DENIED"

    code, err = run_as("sam", capfd, "register", "--experiment", EXPERIMENT, team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err,
        f"posterml register: user 'sam' may not register versions of {MODEL_NAME} "
        "(needs EDIT on the registered model)",
    )
    code, err = run_as("sam", capfd, "rollback", team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err,
        f"posterml rollback: user 'sam' may not move @champion of {MODEL_NAME} "
        "(needs MANAGE on the registered model)",
    )
    assert aliases(team) == team.versions


def test_no_grant_no_model_in_one_line(team, tmp_path, capfd):
    """An account with no grant: predict says which right, review opens unticked and says
    why."""
    from posterml.review.queue import queue_from_folder

    posters = write_posters(tmp_path / "scans")
    code, err = run_as("nobody", capfd, "predict", str(posters), team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err,
        f"posterml predict: user 'nobody' may not read {MODEL_NAME} "
        "(needs READ on the registered model)",
    )
    with as_person("nobody"):
        queue, _ = queue_from_folder(posters, tmp_path / "dataset", CHAMPION_URI)
    assert queue.note == (
        f"No model could be used (user 'nobody' may not read {MODEL_NAME} (needs READ on the "
        "registered model)); every genre starts unticked."
    )


# --------------------------------------------------------------------------- EDIT
def test_edit_user_logs_runs_but_cannot_move_the_champion(team, capfd):
    with as_person("eddie"):
        experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_param("who", "eddie")
            mlflow.log_metric("val_f1_weighted", 0.1)
        assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
        client = MlflowClient()
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, "1")  # EDIT may
        with pytest.raises(MlflowException) as refused:
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, "1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert refused.value.message == (
        f"PERMISSION_DENIED: user 'eddie' may not move @champion of {MODEL_NAME} "
        "(needs MANAGE on the registered model)"
    )
    with as_user("admin", team.admin_password):
        MlflowClient().delete_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS)

    # register: EDIT registers the better run's model, then may not promote it.
    code, err = run_as("eddie", capfd, "register", "--experiment", EXPERIMENT, team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err,
        f"posterml register: user 'eddie' may not move @previous of {MODEL_NAME} "
        "(needs MANAGE on the registered model)",
    )
    code, err = run_as("eddie", capfd, "rollback", team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err,
        f"posterml rollback: user 'eddie' may not move @champion of {MODEL_NAME} "
        "(needs MANAGE on the registered model)",
    )
    assert aliases(team) == team.versions


# --------------------------------------------------------------------------- MANAGE
def test_manage_user_promotes_and_rolls_back(team, capfd):
    before = aliases(team)
    try:
        code, err = run_as("ana", capfd, "register", "--experiment", EXPERIMENT, team=team)
        assert code == 0, err
        promoted = aliases(team)
        assert promoted[PREVIOUS_ALIAS] == before[CHAMPION_ALIAS]
        assert int(promoted[CHAMPION_ALIAS]) > int(before[CHAMPION_ALIAS])
        code, err = run_as("ana", capfd, "rollback", team=team)
        assert code == 0, err
        assert aliases(team)[CHAMPION_ALIAS] == before[CHAMPION_ALIAS]
    finally:
        with as_person("ana"):
            client = MlflowClient()
            for alias, version in before.items():
                client.set_registered_model_alias(MODEL_NAME, alias, version)
    assert aliases(team) == team.versions


# --------------------------------------------------------------------------- assistant
def test_assistant_reviews_with_the_champion_but_logs_nothing(team, tmp_path):
    from posterml.review.queue import queue_from_folder

    posters = write_posters(tmp_path / "scans")
    with as_person("lea"):
        queue, left_out = queue_from_folder(posters, tmp_path / "dataset", CHAMPION_URI)
        assert queue.note == f"Genres ticked by {CHAMPION_URI}." and not left_out
        experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
        with pytest.raises(MlflowException) as refused:
            MlflowClient().create_run(experiment)
    assert refused.value.error_code == "PERMISSION_DENIED"


# --------------------------------------------------------------------------- accounts
def test_roles_are_the_grants_posterml_users_add_made(team, capfd):
    with as_user("admin", team.admin_password):
        client = mlflow.server.get_app_client("basic-auth", tracking_uri=team.server.url)
        experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
        for name, (role, _) in USERS.items():
            on_experiment = client.get_user_permission(name, "experiment", experiment)
            on_model = client.get_user_permission(name, "registered_model", MODEL_NAME)
            want = (role.experiment, role.model) if role else ("NO_PERMISSIONS",) * 2
            assert (on_experiment.permission, on_model.permission) == want, name
        # An existing account changes role without a new password; a short one is refused.
        capfd.readouterr()
        try:
            assert posterml_cli("users", "add", "eddie", "--role", "scorer") == 0
            assert "'eddie' exists (password unchanged); role scorer:" in capfd.readouterr().out
            assert (
                client.get_user_permission("eddie", "registered_model", MODEL_NAME).permission
                == "READ"
            )
        finally:
            add_user(team.server.url, "eddie", None, EDITOR, EXPERIMENT, MODEL_NAME)
        assert posterml_cli("users", "add", "kim", "--role", "scorer", stdin="short\n") == 1
        assert_one_line(
            capfd.readouterr().err,
            "posterml users add: Password must be at least 12 characters.",
        )
    code, err = run_as("ana", capfd, "users", "add", "kim", "--role", "scientist", team=team)
    assert code == EXIT_REFUSED
    assert_one_line(
        err, "posterml users: user 'ana' may not manage accounts and rights (only an admin may)"
    )


def test_a_user_changes_their_own_password(team, capfd):
    """``posterml users password``: the current password comes from the user's credentials,
    the new one from stdin; the old one stops working at once."""
    old, new = USERS["nobody"][1], "nobody-Renewed-77c2a1e0f3"
    probe = f"{team.server.url}/api/2.0/mlflow/users/get?username=nobody"
    try:
        with as_person("nobody"):
            assert posterml_cli("users", "password", stdin=new + "\n") == 0
        assert "password of 'nobody' changed" in capfd.readouterr().out
        assert requests.get(probe, auth=("nobody", old), timeout=10).status_code == 401
        assert requests.get(probe, auth=("nobody", new), timeout=10).status_code == 200
    finally:
        with as_user("nobody", new):
            posterml_cli("users", "password", stdin=old + "\n")
    assert requests.get(probe, auth=("nobody", old), timeout=10).status_code == 200
    out, err = capfd.readouterr()
    assert new not in out + err and old not in out + err


# --------------------------------------------------------------------------- secrets
def test_no_password_reaches_runs_artifacts_or_logs(team):
    """As for the TMDb key: every file the server keeps (runs, params, tags, artifacts,
    models, the users database, its log), every run's params and tags as the API returns
    them, and everything logged or printed while people worked."""
    passwords = team.passwords()
    users_only = {k: v for k, v in passwords.items() if k != "admin"}
    kept = [p for p in team.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in kept) and any("artifacts" in p.parts for p in kept)
    secret_files = {team.config.auth_config}  # the admin's, on purpose (0600)
    for path in kept:
        data = path.read_bytes()
        leaked = [name for name, pw in passwords.items() if pw.encode() in data]
        if path in secret_files:
            assert leaked == ["admin"], path
        else:
            assert leaked == [], path
    with as_user("admin", team.admin_password):
        client = MlflowClient()
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, max_results=1000)
    assert len(runs) >= 4  # the real run, its trials, the stand-in, the register run...
    for run in runs:
        values = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert not [name for name, pw in users_only.items() if pw in values], run.info.run_id
    assert any("Authorization" not in line and "http" in line for line in team.log)
    text = "\n".join(team.log) + team.output
    assert not [name for name, pw in passwords.items() if pw in text]

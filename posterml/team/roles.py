"""The shop's roles as MLflow grants, and the user accounts that hold them.

Every right is a grant of MLflow's basic-auth (``default_permission = NO_PERMISSIONS``, so
an account holds nothing else), on the experiment the team trains in and on the registered
model:

- scientist: trains (EDIT on the experiment) and promotes (MANAGE on the registered model,
  which alone moves ``@champion``: ``alias_guard``);
- assistant: labels with ``posterml review``, whose page ticks the champion's genres and
  orders posters by its review priority: it reads the champion. ``posterml add`` and the
  dataset folder are files, not MLflow: their guard is the folder's permissions;
- scorer: scores with the champion.

Reading a registered version's files takes READ on the experiment too: MLflow serves them
from the logged model's folder in the experiment's artifacts (measured: READ on the model
alone gets a 403 from ``mlflow-artifacts``). So the assistant and the scorer hold the same
grants; they are two roles because they are two jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from posterml.names import MODEL_NAME

DEFAULT_EXPERIMENT = "posterml"  # the README's --experiment-name


@dataclass(frozen=True)
class Role:
    name: str
    job: str
    experiment: str  # MLflow permission on the experiment
    model: str  # and on the registered model


ROLES = {
    role.name: role
    for role in (
        Role("scientist", "trains and promotes", "EDIT", "MANAGE"),
        Role(
            "assistant", "labels with posterml review (the champion ticks genres)", "READ", "READ"
        ),
        Role("scorer", "scores with the champion", "READ", "READ"),
    )
}


class UserError(RuntimeError):
    """The account could not be set up as asked; the message says why."""


def _auth_client(tracking_uri: str):
    if not tracking_uri.startswith(("http://", "https://")):
        raise UserError(
            f"users live on the team tracking server, not in {tracking_uri}: set "
            "MLFLOW_TRACKING_URI=http://HOST:PORT"
        )
    import mlflow.server

    return mlflow.server.get_app_client("basic-auth", tracking_uri=tracking_uri)


def user_exists(tracking_uri: str, name: str) -> bool:
    """Whether the server has an account ``name`` (asked as an admin)."""
    from mlflow.exceptions import MlflowException

    try:
        _auth_client(tracking_uri).get_user(name)
        return True
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created empty if missing (so it can be granted)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def _grant(client, name: str, resource_type: str, resource_id: str, level: str) -> None:
    """Grant ``level``, replacing a grant the user holds there (MLflow's REST grant does not
    overwrite one: it answers RESOURCE_ALREADY_EXISTS)."""
    from mlflow.exceptions import MlflowException

    try:
        client.grant_user_permission(name, resource_type, resource_id, level)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.revoke_user_permission(name, resource_type, resource_id)
        client.grant_user_permission(name, resource_type, resource_id, level)


def grant_role(
    tracking_uri: str,
    name: str,
    role: Role,
    experiment: str = DEFAULT_EXPERIMENT,
    model: str = MODEL_NAME,
) -> list[str]:
    """Give ``name`` the role's grants (replacing the ones it had on the same experiment and
    model); the grants, in words. The caller's credentials must be an admin's."""
    client = _auth_client(tracking_uri)
    exp_id = experiment_id(tracking_uri, experiment)
    _grant(client, name, "experiment", exp_id, role.experiment)
    _grant(client, name, "registered_model", model, role.model)
    return [
        f"{role.experiment} on experiment {experiment!r} (id {exp_id})",
        f"{role.model} on registered model {model!r}",
    ]


def add_user(
    tracking_uri: str,
    name: str,
    password: str | None,
    role: Role,
    experiment: str = DEFAULT_EXPERIMENT,
    model: str = MODEL_NAME,
) -> list[str]:
    """Create account ``name`` with ``password`` (None: it must exist already, and keeps its
    password) and give it ``role``; the grants, in words."""
    if password is not None:
        _auth_client(tracking_uri).create_user(name, password)
    return grant_role(tracking_uri, name, role, experiment, model)


def change_password(
    tracking_uri: str, name: str, new_password: str, current_password: str | None
) -> None:
    """Set ``name``'s password: a user's own needs ``current_password``, an admin needs none
    for another's."""
    _auth_client(tracking_uri).update_user_password(name, new_password, current_password)

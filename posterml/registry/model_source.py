"""Can a model URI be loaded from here? One clear line when not, before anything is created.

``posterml predict --model models:/poster-genre-classifier@champion`` is run by a dealer from
any folder. Left to itself MLflow would (1) create an empty ``mlflow.db`` there (the default
store is a sqlite file in the working directory, and MLflow creates a missing one with empty
tables), (2) fail with "Registered Model with name=... not found", saying nothing about
where it looked, or (3) retry an unreachable tracking server for ~4 minutes (7 retries with
exponential backoff, meant for rate limits) before failing with a page of urllib3 text.

:func:`check_model_source` looks first: a ``models:/`` or ``runs:/`` URI needs a store that
exists and knows the model; a local folder or any other artifact URI needs none and is
left to the loader. The look-up retries an HTTP store only twice (seconds, not minutes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException

from posterml.team.refusals import hides_absence, model_of, raise_if_refused
from posterml.tracking import DEFAULT_TRACKING_URI, environment, sqlite_file

STORE_SCHEMES = ("models", "runs")  # URIs resolved through the tracking/registry store
# The look-up's HTTP budget (MLflow's defaults: 7 retries, 120 s timeout), unless the user
# set these variables: an unreachable server is reported in ~6 s (backoff 2 s, then 4 s).
LOOKUP_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
_MAX_REASON_CHARS = 240


class ModelSourceError(RuntimeError):
    """The model cannot be loaded from the configured store; the message says what to set."""


def _where(uri: str) -> str:
    """The store, and where it came from, for the error message."""
    if uri == DEFAULT_TRACKING_URI:
        return f"{uri}, posterml's default: the folder it runs in"
    return f"MLFLOW_TRACKING_URI={uri}"


ADVICE = (
    "set MLFLOW_TRACKING_URI to the store the model was registered in "
    "(e.g. sqlite:////path/to/project/mlflow.db or http://HOST:5000), "
    "or pass --model with a model folder"
)


def _reason(exc: MlflowException) -> str:
    """MLflow's message on one short line; an HTTP failure as what it is, not urllib3's page
    of text (MLflow raises it inside the ``except`` of the requests error: its context)."""
    import requests

    if isinstance(exc.__context__, requests.exceptions.RequestException):
        return f"unreachable: {type(exc.__context__).__name__}"
    text = re.sub(r"\s+", " ", exc.message).strip()
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


@contextmanager
def few_http_retries() -> Iterator[None]:
    """MLflow HTTP calls inside fail in seconds, unless the user set their own budget."""
    with environment({k: v for k, v in LOOKUP_HTTP_ENV.items() if k not in os.environ}):
        yield


def _look_up(model_uri: str) -> None:
    """Ask the store for the run, model version or logged model ``model_uri`` names."""
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = mlflow.MlflowClient()
    if urlparse(model_uri).scheme == "runs":
        run_id, _ = RunsArtifactRepository.parse_runs_uri(model_uri)
        client.get_run(run_id)
        return
    found = get_model_name_and_version(client, model_uri)  # resolves aliases and stages
    if len(found) == 1:  # models:/<logged model id>
        client.get_logged_model(found[0])
    else:
        client.get_model_version(*found)


def check_model_source(model_uri: str) -> None:
    """Raise :class:`ModelSourceError` unless ``model_uri`` can be found, creating nothing.

    Tracking and registry URIs are MLflow's current ones (``configure_tracking`` sets them).
    """
    scheme = urlparse(model_uri).scheme
    if scheme not in STORE_SCHEMES:
        return  # a local folder or a plain artifact URI: the loader says what is wrong
    store = mlflow.get_registry_uri() if scheme == "models" else mlflow.get_tracking_uri()
    for uri in dict.fromkeys([mlflow.get_tracking_uri(), store]):
        path = sqlite_file(uri)
        if path is not None and not path.is_file():
            raise ModelSourceError(
                f"no MLflow store at {path.absolute()} ({_where(uri)}) to find {model_uri} "
                f"in: {ADVICE}"
            )
    try:
        with few_http_retries():
            _look_up(model_uri)
    except MlflowException as exc:
        if not hides_absence(exc, model_of(model_uri)):
            raise_if_refused(exc)  # there, but not for this user: posterml.cli names the right
        raise ModelSourceError(
            f"cannot find {model_uri} in the MLflow store {_where(store)} ({_reason(exc)}): "
            f"{ADVICE}"
        ) from None

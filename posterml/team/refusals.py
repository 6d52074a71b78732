"""One line, naming the missing right, when the team server refuses a posterml command.

MLflow's server answers 401 (no or wrong credentials) or 403 (a right missing). Its client
raises ``MlflowException`` (``UNAUTHENTICATED`` / ``PERMISSION_DENIED``) for REST calls and
``requests.HTTPError`` for artifact transfers, often several calls deep inside a model load.
:func:`refused_in_one_line` turns both into one line, for every ``posterml`` command (in
``posterml.cli``) and the ``register`` entry point; code that
swallows errors on purpose (a missing alias, a model not registered yet) lets refusals
through with :func:`raise_if_refused`: ``RESOURCE_DOES_NOT_EXIST`` means "not there", a
refusal means "not for you".

MLflow's own 403 body says only "Permission denied": the right follows from the endpoint
refused, as MLflow's basic-auth validators map them (reads need READ, writes EDIT, deletes
MANAGE). Only ``registered-models/alias`` serves a read and a write under one path, and
MLflow's message omits the method: there the server is asked whether the user may read the
model (then it was a move). The
alias guard's 403 says it in full (``alias_guard``) and is shown as it is.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

EXIT_REFUSED = 77  # sysexits' EX_NOPERM: a script can tell "not allowed" from a failure
REFUSED_CODES = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}
CREDENTIALS_HELP = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write them in "
    "~/.mlflow/credentials"
)
_ENDPOINT = re.compile(r"API request to endpoint (\S+) failed with error code")
_MLFLOW_GENERIC = "Permission denied"
# Last path segments of MLflow endpoints that only read; "delete" needs MANAGE; any other
# write needs EDIT.
_READS = {"get", "search", "get-by-name", "get-download-uri", "get-latest-versions", "list"}
_READS |= {"get-history", "get-history-bulk-interval"}
_ALIAS = "registered-models/alias"


@dataclass(frozen=True)
class Refusal:
    """A 401 or 403 from the tracking server, as far as the client saw it."""

    status: int
    endpoint: str  # the URL path refused ("" when unknown)
    method: str  # "" when MLflow's message does not say
    message: str  # the server's own words, when it gave more than "Permission denied"
    artifact_path: str = ""  # for artifact transfers: "<experiment id>/..."


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def refusal_of(exc: BaseException) -> Refusal | None:
    """The refusal behind ``exc`` (itself or what it was raised from), or None."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    for error in _chain(exc):
        if isinstance(error, MlflowException) and error.error_code in REFUSED_CODES:
            found = _ENDPOINT.search(error.message)
            said = str(error.json.get("message", "")) if isinstance(error, RestException) else ""
            endpoint = found.group(1) if found else ""
            return Refusal(REFUSED_CODES[error.error_code], endpoint, "", said.strip())
        response = getattr(error, "response", None)
        if isinstance(error, requests.HTTPError) and response is not None:
            if response.status_code in (401, 403):
                url = urlparse(response.url)
                path = url.path
                if "/artifacts/" in path:
                    artifact = path.split("/artifacts/", 1)[1]
                else:
                    artifact = parse_qs(url.query).get("path", [""])[0]
                method = response.request.method if response.request is not None else ""
                return Refusal(response.status_code, path, method or "", "", artifact)
    return None


def raise_if_refused(exc: BaseException) -> None:
    """Re-raise ``exc`` if it is a refusal; for ``except`` blocks that mean "not there"."""
    if refusal_of(exc) is not None:
        raise exc


def tracking_user() -> str | None:
    """The user MLflow's client sends: ``MLFLOW_TRACKING_USERNAME``, else the credentials
    file's (never the password)."""
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username


def _model_answer(model: str) -> str:
    """What the server says when asked for registered model ``model`` by name: "readable",
    "missing" (404: this user may read it, it is not there), "refused" or "unknown" (it
    could not be asked; this runs while reporting another error, so it never raises)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_registered_model(model)
        return "readable"
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return "missing"
        return "refused" if refusal_of(exc) is not None else "unknown"
    except Exception:  # an unreachable server: the refusal stays the news
        return "unknown"


def hides_absence(exc: BaseException, model: str | None) -> bool:
    """Whether refusal ``exc`` stands for "``model`` does not exist". MLflow's auth refuses
    reading a missing model's aliases and versions (403, so refusals tell nothing about what
    exists); asked for the model by name, it answers 404 to a user who may read that name."""
    return bool(model) and refusal_of(exc) is not None and _model_answer(model) == "missing"


def _needed(refusal: Refusal, model: str | None) -> tuple[str, str, str]:
    """(what was refused, the level it needs, on what kind of resource) for MLflow's 403."""
    endpoint, method = refusal.endpoint, refusal.method.upper()
    last = endpoint.rstrip("/").rsplit("/", 1)[-1]
    on_model = "registered-models" in endpoint or "model-versions" in endpoint
    if refusal.artifact_path or "mlflow-artifacts" in endpoint:
        if method in ("PUT", "POST"):
            return "store files in {experiment}", "EDIT", "experiment"
        if method == "DELETE":
            return "delete files of {experiment}", "MANAGE", "experiment"
        return "read the model and run files of {experiment}", "READ", "experiment"
    if endpoint.endswith(_ALIAS):
        if method == "DELETE":
            return "remove an alias of {model}", "MANAGE", "registered model"
        # A GET refused, unless the model reads fine: then it was a move (a POST).
        if method == "GET" or not (model and _model_answer(model) == "readable"):
            return "read {model}", "READ", "registered model"
        return "move an alias of {model}", "EDIT", "registered model"
    if on_model:
        if last in _READS:
            return "read {model}", "READ", "registered model"
        if last == "delete":
            return "delete versions of {model}", "MANAGE", "registered model"
        if endpoint.endswith("model-versions/create"):
            return "register versions of {model}", "EDIT", "registered model"
        return "change {model}", "EDIT", "registered model"
    if last in _READS:
        return "read {experiment}", "READ", "experiment"
    if last == "delete":
        return "delete runs of {experiment}", "MANAGE", "experiment"
    return "log runs in {experiment}", "EDIT", "experiment"


def model_of(uri: str | None) -> str | None:
    """The registered model a ``models:/NAME@alias`` or ``models:/NAME/3`` URI names."""
    found = re.fullmatch(r"models:/([^/@]+)(?:@[^/]+|/[^/]+)", uri or "")
    return found.group(1) if found else None


def refusal_reason(exc: BaseException, model_uri: str | None = None) -> str | None:
    """:func:`refusal_line` for ``exc`` if it is a refusal, else None."""
    refusal = refusal_of(exc)
    return None if refusal is None else refusal_line(refusal, model_of(model_uri))


def refused_in_one_line(
    command: str,
    run: Callable[[], int | None],
    model: str | None = None,
    experiment: str | None = None,
) -> int:
    """``run()``'s exit status; a refusal raised anywhere inside becomes one line on stderr,
    ``COMMAND: user 'ana' may not ... (needs ...)``, and :data:`EXIT_REFUSED`."""
    try:
        return run() or 0
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        experiment = None if experiment in ("", "current") else experiment
        print(f"{command}: {refusal_line(refusal, model, experiment)}", file=sys.stderr)
        return EXIT_REFUSED


def refusal_line(refusal: Refusal, model: str | None = None, experiment: str | None = None) -> str:
    """The one line for ``refusal``: who, what, and the right it needs. ``model`` and
    ``experiment`` name what the command works on."""
    import mlflow

    user = tracking_user()
    if refusal.status == 401:
        where = mlflow.get_tracking_uri()
        if not user:
            return f"the tracking server {where} needs a user and password: {CREDENTIALS_HELP}"
        return (
            f"the tracking server {where} did not accept user {user!r} (wrong password, or "
            f"no such user): {CREDENTIALS_HELP}"
        )
    if refusal.message and refusal.message != _MLFLOW_GENERIC:
        return refusal.message  # the alias guard's own line
    if re.search(r"/mlflow/(users|roles)/", refusal.endpoint):
        return f"user {user!r} may not manage accounts and rights (only an admin may)"
    what, level, kind = _needed(refusal, model)
    if experiment:
        named = f"experiment {experiment!r}"
    elif refusal.artifact_path[:1].isdigit():  # artifact paths start with the experiment id
        named = f"experiment {refusal.artifact_path.split('/', 1)[0]}"
    else:
        named = "the experiment"
    what = what.format(model=model or "the registered model", experiment=named)
    return f"user {user!r} may not {what} (needs {level} on the {kind})"

"""On the team server, only a MANAGE user moves ``@champion`` (and ``@previous``).

MLflow's basic-auth lets EDIT on a registered model set any of its aliases
(``SetRegisteredModelAlias`` checks ``can_update``; only deleting an alias needs MANAGE), so a
user allowed to register candidate versions could also make one serve. The alias that
decides what the shop serves needs the right that decides who may do what: MANAGE.
``@previous`` too, because ``posterml rollback`` makes it the champion.

The check is the auth config's ``authorization_function``, MLflow's own hook, which runs
first on every request (``basic_auth.ini``: ``authorization_function =
posterml.team.alias_guard:authenticate``). It authenticates as MLflow's default does, then
answers 403 to a non-MANAGE user's ``POST .../registered-models/alias`` naming a protected
alias; MLflow's validators then run as usual. A hook rather than an ``mlflow.app`` plugin:
the server stays ``--app-name basic-auth`` and needs no entry point installed. This module
runs inside ``mlflow server``: it imports Flask and MLflow's auth app, nothing of posterml's
but the alias names.
"""

from __future__ import annotations

import json

from flask import Response, g, make_response, request
from mlflow.server.auth import authenticate_request_basic_auth, authorize, store
from mlflow.server.auth.requirements import Requirement
from werkzeug.datastructures import Authorization

from posterml.names import CHAMPION_ALIAS, PREVIOUS_ALIAS

PROTECTED_ALIASES = frozenset({CHAMPION_ALIAS, PREVIOUS_ALIAS})
ALIAS_ROUTE = "/mlflow/registered-models/alias"  # under /api/2.0 (clients) and /ajax-api (UI)
NEEDED = "MANAGE on the registered model"


def authenticate() -> Authorization | Response:
    """MLflow's basic authentication, then the alias guard (once per request)."""
    authorization = authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    # MLflow calls the authorization function again in most validators: judge once.
    if "posterml_alias_refusal" not in g:
        g.posterml_alias_refusal = _alias_refusal(authorization.username)
    return g.posterml_alias_refusal or authorization


def _request_body() -> dict:
    """The body as MLflow's handler reads it: JSON whatever the content type, a JSON string
    decoded twice (old clients); {} when unreadable (the handler then refuses it too)."""
    body = request.get_json(force=True, silent=True)
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    return body if isinstance(body, dict) else {}


def _alias_refusal(username: str) -> Response | None:
    """A 403 for a non-MANAGE user setting a protected alias; None for any other request."""
    if request.method != "POST" or not request.path.endswith(ALIAS_ROUTE):
        return None
    body = _request_body()
    name, alias = body.get("name"), body.get("alias")
    if isinstance(alias, str) and alias.casefold() not in PROTECTED_ALIASES:
        return None  # any other alias (@challenger): MLflow's EDIT check decides
    if store.get_user(username).is_admin:
        return None
    if isinstance(name, str) and name:
        anchor = ("registered_model", name)
        if authorize(username, anchor, [Requirement(*anchor, "manage")]):
            return None
    # Unreadable name or alias: refused too (fail closed), MLflow would refuse it anyway.
    message = (
        f"user {username!r} may not move @{alias} of {name} (needs {NEEDED})"
        if isinstance(alias, str) and isinstance(name, str)
        else f"user {username!r} may not move a protected alias (needs {NEEDED})"
    )
    response = make_response({"error_code": "PERMISSION_DENIED", "message": message}, 403)
    return response

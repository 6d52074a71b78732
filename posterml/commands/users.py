"""``posterml users``: the team server's accounts and the shop's roles.

``init FOLDER`` writes the server's secret files, ``add NAME --role R`` makes an account a
scientist, assistant or scorer (an admin runs it), ``password [NAME]`` changes one. The
logic is in ``posterml.team``; passwords are read from the terminal without echo, or from
standard input (one line) when it is not a terminal, never from the command line, where
``ps`` and the shell history would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import Any

from posterml.names import MODEL_NAME
from posterml.team.roles import DEFAULT_EXPERIMENT, ROLES

DESCRIPTION = "accounts of the team tracking server: init, add NAME --role ROLE, password"
ROLES_HELP = "; ".join(
    f"{r.name}: {r.job} ({r.experiment} on the experiment, {r.model} on the model)"
    for r in ROLES.values()
)
HELP = f"""Set up who may do what on the team tracking server (mlflow server --app-name
basic-auth). `init FOLDER` writes FOLDER/basic_auth.ini (a fresh admin password, mode 0600)
and FOLDER/server.env for `mlflow --env-file FOLDER/server.env server --app-name basic-auth`.
`add` and `password` talk to the server at MLFLOW_TRACKING_URI as the user in
MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials); `add` needs the
admin. Roles: {ROLES_HELP}. Only MANAGE on the registered model moves @champion."""


def read_password(prompt: str) -> str:
    """A password from the terminal (asked twice, not echoed) or one line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if not first:
        raise ValueError("no password given")
    return first


def _said(exc) -> str:
    """MLflow's message without its error code ("Password must be at least 12 characters.")."""
    return re.sub(r"^[A-Z_]+: ", "", exc.message)


def _server() -> str:
    from posterml.tracking import configure_tracking

    return configure_tracking()


def run_init(args: argparse.Namespace) -> int:
    from posterml.team.server_files import ADMIN_PASSWORD_ENV, TeamConfigError, write_team_config

    try:
        config = write_team_config(args.folder)
    except TeamConfigError as exc:
        print(f"posterml users init: {exc}", file=sys.stderr)
        return 1
    where = (
        f"in {config.auth_config} (admin_password; only you can read the file)"
        if config.password_in_file
        else f"from {ADMIN_PASSWORD_ENV}, read at the server's first start"
    )
    print(f"wrote {config.auth_config} and {config.env_file} (mode 0600)")
    print(f"the admin password is {where}")
    print(
        f"start the server:  mlflow --env-file {config.env_file} server --app-name basic-auth "
        "--backend-store-uri ... --artifacts-destination ... --workers 1"
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from posterml.team.roles import UserError, add_user, user_exists

    role = ROLES[args.role]
    try:
        uri = _server()
        exists = user_exists(uri, args.name)
        password = None if exists else read_password(f"password for {args.name}: ")
        grants = add_user(uri, args.name, password, role, args.experiment, args.model_name)
    except (UserError, ValueError) as exc:
        print(f"posterml users add: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        from posterml.team.refusals import raise_if_refused

        raise_if_refused(exc)  # posterml.cli says which right is missing
        print(f"posterml users add: {_said(exc)}", file=sys.stderr)
        return 1
    did = "exists (password unchanged)" if exists else "created"
    print(f"user {args.name!r} {did}; role {role.name}: " + "; ".join(grants))
    return 0


def run_password(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from posterml.team.refusals import raise_if_refused, tracking_user
    from posterml.team.roles import UserError, change_password

    me = tracking_user()
    name = args.name or me
    if not name:
        print("posterml users password: whose? give NAME or log in", file=sys.stderr)
        return 1
    try:
        from mlflow.utils.credentials import read_mlflow_creds

        current = read_mlflow_creds().password if name == me else None
        new = read_password(f"new password for {name}: ")
        change_password(_server(), name, new, current)
    except (UserError, ValueError) as exc:
        print(f"posterml users password: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        raise_if_refused(exc)
        print(f"posterml users password: {_said(exc)}", file=sys.stderr)
        return 1
    print(f"password of {name!r} changed" + (": update your credentials" if name == me else ""))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("users", help=DESCRIPTION, description=HELP)
    actions = parser.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write the server's auth config and env file")
    init.add_argument("folder", metavar="FOLDER")
    init.set_defaults(handler=run_init)
    add = actions.add_parser("add", help="create an account, or change its role (admin)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=sorted(ROLES), help=ROLES_HELP)
    add.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="the team's experiment")
    add.add_argument("--model-name", default=MODEL_NAME)
    add.set_defaults(handler=run_add)
    password = actions.add_parser("password", help="change your password (or NAME's: admin)")
    password.add_argument("name", metavar="NAME", nargs="?")
    password.set_defaults(handler=run_password)
    return parser

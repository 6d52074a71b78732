"""The team server's two secret files, written with mode 0600 in a folder of mode 0700.

``basic_auth.ini`` is MLflow's auth config (``MLFLOW_AUTH_CONFIG_PATH``). MLflow ships no
admin password and refuses to start without one: the file holds a fresh random one, or
none when ``MLFLOW_AUTH_ADMIN_PASSWORD`` gives it at the first start. Unlisted users get
nothing (``NO_PERMISSIONS``): every right comes from a role (``posterml users add``). The
alias guard rides on ``authorization_function``; checked passwords are cached a minute.

``server.env`` is what ``mlflow --env-file team/server.env server --app-name basic-auth``
loads: where that config is, and the static Flask secret key the auth app requires (its
login form's CSRF tokens).
"""

from __future__ import annotations

import configparser
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from posterml.io import atomic_write

CONFIG_NAME = "basic_auth.ini"
ENV_NAME = "server.env"
USERS_DB_NAME = "basic_auth.db"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"  # MLflow's own: read at the first start
AUTHORIZATION_FUNCTION = "posterml.team.alias_guard:authenticate"
DEFAULT_PERMISSION = "NO_PERMISSIONS"
# Each request checks its password with PBKDF2: 309 ms median on this 2-core machine (load
# 6), 8.5 ms with MLflow's cache; a model load is ~170 requests. The cost of the cache: a
# password changed or an account deleted through another worker stays valid up to this long.
AUTH_CACHE_TTL_S = 60


class TeamConfigError(RuntimeError):
    """The files could not be written as asked."""


@dataclass(frozen=True)
class TeamConfig:
    auth_config: Path  # basic_auth.ini
    env_file: Path  # server.env, for `mlflow --env-file`
    password_in_file: bool  # False: MLFLOW_AUTH_ADMIN_PASSWORD gives it


def config_text(users_db: Path, admin_password: str | None) -> str:
    """The ini MLflow's auth app reads: users in ``users_db`` (sqlite), unlisted users get
    nothing, the alias guard, and the admin's password unless it comes from the env."""
    lines = [
        "[mlflow]",
        f"default_permission = {DEFAULT_PERMISSION}",
        f"database_uri = sqlite:///{users_db.resolve()}",
        f"admin_username = {ADMIN_USERNAME}",
        f"authorization_function = {AUTHORIZATION_FUNCTION}",
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}",
    ]
    if admin_password:
        lines.append(f"admin_password = {admin_password}")
    return "\n".join(lines) + "\n"


def _write_secret(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8", permissions=0o600) as handle:
        handle.write(text)


def write_team_config(folder: str | os.PathLike[str]) -> TeamConfig:
    """Write ``basic_auth.ini`` and ``server.env`` into ``folder`` (created 0700), both 0600.

    Existing files are never replaced: the admin already exists in the users database,
    where a new password in the file would be ignored, and a new secret key would void the
    UI's open forms."""
    root = Path(folder).expanduser().resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = TeamConfig(root / CONFIG_NAME, root / ENV_NAME, not os.environ.get(ADMIN_PASSWORD_ENV))
    for path in (config.auth_config, config.env_file):
        if path.exists():
            raise TeamConfigError(
                f"{path} exists: this server is already set up (a user changes a password "
                "with `posterml users password`)"
            )
    password = secrets.token_urlsafe(24) if config.password_in_file else None
    _write_secret(config.auth_config, config_text(root / USERS_DB_NAME, password))
    _write_secret(
        config.env_file,
        f"MLFLOW_AUTH_CONFIG_PATH={config.auth_config}\n"
        f"MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_urlsafe(32)}\n",
    )
    return config


def admin_password(auth_config: str | os.PathLike[str]) -> str | None:
    """The admin password written in ``basic_auth.ini``, or None (it came from the env)."""
    parser = configparser.ConfigParser()
    parser.read(auth_config, encoding="utf-8")
    return parser.get("mlflow", "admin_password", fallback=None) or None

"""MLflow tracking setup shared by every entry point.

MLflow 3 defaults to a sqlite store; we make that explicit (``sqlite:///mlflow.db`` in the
working directory) so every entry point, test and the UI agree on where runs live.
``MLFLOW_TRACKING_URI`` still wins, so a team server or a PostgreSQL URL works unchanged.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.types.schema import ColSpec, Schema

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def configure_tracking(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.

    Returns the URI in use. The registry URI follows the tracking URI.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """MLflow reads its settings (store, credentials, HTTP budget) from the environment: set
    ``values`` there (None: unset) for the block. Each of these variables is back as it was
    afterwards, whatever the block did to it (``mlflow.set_tracking_uri`` writes one too)."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite://`` store URI (relative to the working directory, as
    MLflow reads it); None for any other store and for in-memory sqlite.

    MLflow creates a missing sqlite file with empty tables on first use: a reader that must
    not (``posterml predict``) checks the file exists first.
    """
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


def log_new_params(params: dict) -> None:
    """Log params the active run does not have yet.

    ``mlflow run`` logs every ``-P`` value itself, as typed ("0", "true"); logging our parsed
    form ("0.0", "True") again would be refused as a change, so those keys are left as they are.
    """
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    fresh = {k: v for k, v in params.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


def redacted_url(url: str) -> str:
    """A storage URL without its password, fit for a param or a tag (``postgresql://u:***@h/db``).

    Pass passwords through ``PGPASSWORD`` or ``~/.pgpass`` instead: ``mlflow run`` itself logs
    every ``-P`` value as given."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a database URL ("memory"): nothing secret in it
        return url


class PosterTable(PandasDataset):
    """A dataset's posters as an MLflow dataset input (``poster_id, year, genres``).

    Its schema is declared: MLflow would infer one from the frame and, finding the integer
    ``year``, warn that integers cannot hold missing values (a hint meant for model inputs;
    a dataset's years are never missing).
    """

    schema = Schema(
        [ColSpec("string", "poster_id"), ColSpec("long", "year"), ColSpec("string", "genres")]
    )


def poster_table(frame: pd.DataFrame, source: str, name: str, digest: str) -> PosterTable:
    """The MLflow dataset input of ``frame``'s posters (its ``poster_id``, ``year`` and
    ``genres`` lists, joined with ``|``), read from ``source`` and identified by ``digest``."""
    table = pd.DataFrame(
        {
            "poster_id": frame["poster_id"].astype(str),
            "year": frame["year"].astype("int64"),
            "genres": frame["genres"].map("|".join),
        }
    )
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice (schemes "" and "file"), so every local
        # path "can be interpreted in multiple ways"; both are the same kind of source.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        resolved = resolve_dataset_source(source)
    return PosterTable(table, resolved, name=name, digest=digest)

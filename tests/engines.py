"""Real engines for the scale tests: a throwaway PostgreSQL server, an MLflow tracking server
on it, and a Spark session in local mode.

Each fixture skips, with the reason, only where its engine is not installed (no PostgreSQL
binaries, no psycopg, no pyspark, no Java); ``.ci/run`` installs them. Modules import the
fixtures they need: ``from engines import postgres  # noqa: F401``.

PostgreSQL refuses to run as root, so under root the server runs as an unprivileged user
(``postgres`` where the package created it, else ``nobody``) from a folder it owns in the
system temp dir (pytest's own temp folders are private to root). It listens on 127.0.0.1 on
a free port with trust authentication, without fsync (a test database need not survive a
power cut), and is stopped and removed at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._server import HOST, free_port

PG_START_TIMEOUT_S = 60
LOG_TAIL_CHARS = 3000


def _pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, else where Debian's packages put it."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


class PostgresServer:
    """A PostgreSQL cluster in a temp folder on 127.0.0.1:``port``; ``url(db)`` for clients."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="posterml-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", user, "--"]

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, cwd=self.root, check=False
        )
        if done.returncode:
            log = self.log.read_text(errors="replace") if self.log.is_file() else ""
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"{log[-LOG_TAIL_CHARS:]}"
            )

    def start(self) -> PostgresServer:
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-h {HOST} -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(PG_START_TIMEOUT_S),
            "start",
        )
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3, SQLAlchemy's default PostgreSQL driver)."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg
        from psycopg import sql

        conninfo = f"host={HOST} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[scale]')")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server not installed (no initdb/pg_ctl): apt-get install postgresql"
        )
    server = PostgresServer(initdb, pg_ctl)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spark():
    """A local[2] SparkSession made by the code under test (``batch.spark_session``)."""
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[scale]')")
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        pytest.skip("no Java runtime for Spark: apt-get install default-jre-headless")
    from posterml.batch.spark import spark_session

    session = spark_session("local[2]", app_name="posterml-tests")
    try:
        yield session
    finally:
        session.stop()

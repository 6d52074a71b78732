"""Run the real MLflow scoring server (``mlflow models serve``) on loopback.

This is how the serving tests and the serving benchmark (``benchmarks/serving.py``) exercise
the model exactly as production does: ``mlflow models serve -m URI --env-manager local`` on
``127.0.0.1`` and a free port, rather than a model loaded in-process. The server runs in its
own process group so that stopping it also stops the uvicorn workers MLflow spawns, and its
output goes to a log file whose tail is put into the error when it fails to come up.
``LoopbackServer`` is that mechanism for any server command (the tests also run
``mlflow server`` on PostgreSQL with it).

    with LocalModelServer("models:/poster-genre-classifier@champion", tmp_dir) as server:
        requests.post(f"{server.url}/invocations", json=payload)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

HOST = "127.0.0.1"
LOG_TAIL_CHARS = 5000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_group_rss(pgid: int) -> int:
    """Total resident memory in bytes of the processes in process group ``pgid``."""
    import psutil

    total = 0
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                total += process.memory_info().rss
        except (psutil.Error, ProcessLookupError):
            continue  # the process exited while being read
    return total


class LoopbackServer:
    """A server command in its own process group on 127.0.0.1, ready once ``ready_path``
    answers 200; subclasses give the ``command``.

    ``workdir`` receives the log (``server-PORT.log``); ``env`` is added to this process's
    environment; ``cwd`` is the server's working directory (default: the caller's);
    ``timeout`` bounds how long :meth:`start` waits for ``ready_path``.
    """

    what = "server"  # how errors name it
    ready_path = "/ping"

    def __init__(
        self,
        workdir: Path | str,
        port: int | None = None,
        timeout: float = 180.0,
        *,
        cwd: Path | str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.timeout = timeout
        self.cwd = cwd
        self.env = dict(env or {})
        self.log_path = self.workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        """The command line that runs the server on ``HOST`` and ``self.port``."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """This process's environment, plus the venv's bin on PATH and ``self.env``."""
        # MLflow execs ``uvicorn`` by name: the venv's bin must be on PATH.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {**os.environ, "PATH": path, **self.env}

    def launch(self) -> None:
        """Start the server process (in a new session, so a process group) without waiting."""
        if self.process is not None:
            raise RuntimeError(f"server on {self.url} was already started")
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def rss_bytes(self) -> int:
        """Resident memory of the server: the sum of ``VmRSS`` over its process group (the
        ``mlflow`` launcher and the uvicorn worker), read from ``/proc`` (Linux); 0 before
        :meth:`launch` or after :meth:`stop`."""
        if self.process is None or self._stopped:
            return 0
        return process_group_rss(self.process.pid)  # its own session: pgid == pid

    def log_text(self) -> str:
        """Everything the server has written so far ('' before it started)."""
        if not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ``ready_path`` answers 200 (at most ``timeout``, default ``self.timeout``).

        A server that exits raises ``RuntimeError`` and one that never answers is stopped and
        raises ``TimeoutError``, both with the tail of its log.
        """
        if self.process is None:
            raise RuntimeError("wait_ready() before launch()")
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.what} exited with {self.process.returncode}:\n"
                    f"{self.log_text()[-LOG_TAIL_CHARS:]}"
                )
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"{self.what} not ready after {timeout:.0f} s:\n{self.log_text()[-LOG_TAIL_CHARS:]}"
        )

    def start(self) -> LoopbackServer:
        """Launch the server and wait until it answers; on any failure, stop it and re-raise."""
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the whole process group (uvicorn workers included), then SIGKILL it.

        Safe to call more than once, and before :meth:`start`.
        """
        if self.process is None or self._stopped:
            return  # a second killpg could hit an unrelated group that reused the pid
        self._stopped = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=15)
                if sig == signal.SIGTERM:
                    time.sleep(0.5)  # let workers of the group exit before the final kill
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class LocalModelServer(LoopbackServer):
    """``mlflow models serve`` for ``model_uri`` in its own process group, on 127.0.0.1.

    With ``tracking_uri`` the server resolves ``models:/`` URIs in that store
    (``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` are set for it); without, it inherits
    this process's environment. ``cwd`` defaults to the caller's, so relative sqlite URIs
    resolve as they do here. ``workers`` is ``mlflow models serve --workers`` (uvicorn worker
    processes, each with its own copy of the model; MLflow's default is 1).
    """

    what = "scoring server"

    def __init__(
        self,
        model_uri: str,
        workdir: Path | str,
        tracking_uri: str | None = None,
        port: int | None = None,
        timeout: float = 180.0,
        *,
        cwd: Path | str | None = None,
        workers: int | None = None,
    ) -> None:
        env = {}
        if tracking_uri is not None:
            env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri}
        super().__init__(workdir, port, timeout, cwd=cwd, env=env)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.workers = workers

    def command(self) -> list[str]:
        """The ``mlflow models serve`` command line, run with this interpreter."""
        return [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            self.model_uri,
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            str(self.port),
        ] + (["--workers", str(self.workers)] if self.workers else [])


class TrackingServer(LoopbackServer):
    """``mlflow server`` (the UI, the REST API and the registry) over ``backend_uri``, with
    ``artifacts`` (optional) as the folder it serves artifacts from.

    One uvicorn worker (its default is four, each importing MLflow for tens of seconds on 2
    busy cores), and no job runner (two huey consumers nothing here uses). With
    ``auth_env`` (the ``server.env`` of ``posterml users init``) it is the team server with
    MLflow's authentication, started as the README starts it:
    ``mlflow --env-file server.env server --app-name basic-auth``.
    """

    what = "MLflow tracking server"
    ready_path = "/health"  # open without credentials on the auth server too

    def __init__(
        self,
        backend_uri: str,
        workdir: Path | str,
        artifacts: Path | str | None = None,
        *,
        cwd: Path | str | None = None,
        timeout: float = 240.0,
        auth_env: Path | str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        super().__init__(workdir, timeout=timeout, cwd=cwd, env=env)
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.auth_env = auth_env

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "mlflow"]
        if self.auth_env is not None:
            command += ["--env-file", str(self.auth_env)]
        command += ["server", "--backend-store-uri", self.backend_uri]
        if self.artifacts is not None:
            command += ["--artifacts-destination", str(self.artifacts)]
        if self.auth_env is not None:
            command += ["--app-name", "basic-auth"]
        return command + ["--host", HOST, "--port", str(self.port), "--workers", "1"]

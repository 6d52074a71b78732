"""What ``mlflow models serve`` leaves open, and what the nginx token guard costs.

    python -m benchmarks.serve_guard                      # a stand-in model: the guard alone
    python -m benchmarks.serve_guard --model models:/poster-genre-classifier@champion

1. Starts ``mlflow models serve`` without ``-h``, reads the address it listens on from
   ``/proc/net/tcp``, and sends it a request with no credentials at all.
2. Puts nginx with ``deploy/nginx-scoring.conf`` (a bearer token) in front, on 127.0.0.1,
   and checks: no token, a wrong one, the right one.
3. Times ``--n`` one-poster requests straight to the server and through nginx, interleaved,
   and prints p50/p95 of both and the difference.

Only loopback addresses are ever contacted. The stand-in model echoes its input, so the
difference is nginx's, not the model's; with ``--model`` it is measured beside a real one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import _smoke
from benchmarks._server import HOST, LocalModelServer, LoopbackServer, free_port

REPO = Path(__file__).resolve().parents[1]
GUARD_CONFIG = REPO / "deploy" / "nginx-scoring.conf"
HEADERS = {"Content-Type": "application/json"}


class DefaultHostModelServer(LocalModelServer):
    """``mlflow models serve`` as a user types it: no ``-h``, so MLflow's default host."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("-h")
        return command[:at] + command[at + 2 :]


class NginxGuard(LoopbackServer):
    """nginx with ``deploy/nginx-scoring.conf`` on 127.0.0.1, in front of ``upstream``."""

    what = "nginx token guard"

    def __init__(self, workdir: Path, upstream: int, token: str, timeout: float = 30.0):
        super().__init__(workdir, timeout=timeout)
        self.upstream, self.token = upstream, token
        self.prefix = Path(workdir) / f"nginx-{self.port}"

    def command(self) -> list[str]:
        self.prefix.mkdir(parents=True, exist_ok=True)
        snippet = GUARD_CONFIG.read_text()
        for key, value in {
            "__TOKEN__": self.token,
            "__LISTEN__": f"{HOST}:{self.port}",
            "__UPSTREAM__": str(self.upstream),
        }.items():
            snippet = snippet.replace(key, value)
        (self.prefix / "scoring.conf").write_text(snippet)
        temp = " ".join(
            f"{kind}_temp_path {self.prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # Under root the workers would run as nobody, who cannot enter a private temp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        (self.prefix / "nginx.conf").write_text(
            f"daemon off; {user} worker_processes 1; pid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.prefix / 'error.log'};\nevents {{}}\n"
            f"http {{ access_log off; {temp} include {self.prefix / 'scoring.conf'}; }}\n"
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")]

    def wait_ready(self, timeout: float | None = None) -> None:
        """Ready once the port accepts connections (every answer without the token is 401)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {self.process.returncode}: {self.log_text()}"
                )
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"nginx not listening after {timeout} s: {self.log_text()}")


def listening_address(port: int) -> str:
    """The local address a TCP socket listens on at ``port`` (``/proc/net/tcp``, Linux)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    return "not listening on IPv4"


def stand_in_model(root: Path) -> str:
    """A pyfunc that echoes its input, in a sqlite store under ``root``: its URI."""
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    # Artifacts beside the store too: the default experiment would write ./mlruns.
    experiment = mlflow.MlflowClient().create_experiment("guard", str(root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    return info.model_uri


def poster_body() -> bytes:
    """One synthetic 300x450 JPEG poster as the server takes it (~30 kB of base64)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (450, 300, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    image = base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[image]]}}).encode()


def timed(session, url: str, body: bytes, headers: dict) -> float:
    start = time.perf_counter()
    answer = session.post(f"{url}/invocations", data=body, headers=headers, timeout=120)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:300]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model URI (default: a stand-in echo model)")
    parser.add_argument("--n", type=int, default=200, help="requests each way")
    args = _smoke.parse_args(parser, argv, n=5)
    nginx = shutil.which("nginx") or Path("/usr/sbin/nginx").is_file()
    with tempfile.TemporaryDirectory(prefix="posterml-guard-") as tmp:
        root = Path(tmp)
        model = args.model or stand_in_model(root)
        body = poster_body()
        with DefaultHostModelServer(model, root, port=free_port()) as server:
            print(f"mlflow models serve (no -h) listens on {listening_address(server.port)}")
            bare = requests.post(f"{server.url}/invocations", data=body, headers=HEADERS)
            print(f"  a request with no credentials at all: HTTP {bare.status_code}")
            if not nginx:
                if not args.smoke:
                    raise SystemExit("serve_guard: no nginx (Debian: apt-get install nginx-light)")
                _smoke.skip("the nginx guard", "no nginx (apt-get install nginx-light)")
                return 0
            token = secrets.token_hex(24)
            with NginxGuard(root, server.port, token) as guard:
                for label, extra in {
                    "no token": {},
                    "a wrong token": {"Authorization": "Bearer " + secrets.token_hex(24)},
                    "the token": {"Authorization": f"Bearer {token}"},
                }.items():
                    answer = requests.post(
                        f"{guard.url}/invocations", data=body, headers=HEADERS | extra
                    )
                    print(f"  through nginx with {label}: HTTP {answer.status_code}")
                with_token = HEADERS | {"Authorization": f"Bearer {token}"}
                direct, proxied = [], []
                with requests.Session() as session:
                    for _ in range(10):  # warm up both paths (connections, model caches)
                        timed(session, server.url, body, HEADERS)
                        timed(session, guard.url, body, with_token)
                    for _ in range(args.n):  # interleaved: load changes hit both alike
                        direct.append(timed(session, server.url, body, HEADERS))
                        proxied.append(timed(session, guard.url, body, with_token))
    for label, times in (("direct", direct), ("through nginx", proxied)):
        ms = sorted(t * 1000 for t in times)
        p95 = ms[int(0.95 * (len(ms) - 1))]
        print(f"{label:>14}: p50 {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms (n={len(ms)})")
    extra = statistics.median(p - d for p, d in zip(proxied, direct, strict=True)) * 1000
    print(f"nginx adds {extra:.2f} ms per request (median of paired differences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

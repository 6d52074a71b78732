"""``deploy/nginx-scoring.conf``, run in a real nginx on 127.0.0.1: what ``mlflow models
serve`` lacks (authentication) is a bearer token in front of it. The upstream is a tiny HTTP
server that records what reaches it; ``benchmarks/serve_guard.py`` measures the same config
in front of the real scoring server."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from benchmarks._server import HOST

pytestmark = pytest.mark.nginx
TOKEN = "0123456789abcdef" * 3


class _Upstream(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Upstream.seen.append({"headers": dict(self.headers), "size": len(body)})
        answer = json.dumps({"predictions": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def guard(tmp_path: Path):
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx not installed: apt-get install nginx-light")
    from benchmarks.serve_guard import NginxGuard

    upstream = ThreadingHTTPServer((HOST, 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    _Upstream.seen.clear()
    try:
        with NginxGuard(tmp_path, upstream.server_address[1], TOKEN) as server:
            yield server
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_only_the_token_reaches_the_scoring_server(guard):
    url = f"{guard.url}/invocations"
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [["x" * 40_000]]}})
    refused = {
        "no token": {},
        "a wrong token": {"Authorization": "Bearer " + "f" * 48},
        "the token as Basic": {"Authorization": f"Basic {TOKEN}"},
        "the token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    }
    for label, headers in refused.items():
        assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 401
        assert _Upstream.seen == [], label
    answer = requests.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"predictions": []}
    (reached,) = _Upstream.seen
    assert reached["size"] == len(body)  # a 40 kB poster passes whole
    assert "Authorization" not in reached["headers"]  # the token goes no further

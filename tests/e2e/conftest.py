"""End-to-end fixtures: the real CLI in a subprocess and a real `pointsmith serve`."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import create_database, drop_database


@dataclass
class Cli:
    db: str
    cwd: Path

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "POINTSMITH_DATABASE_URL": self.db}
        r = subprocess.run([sys.executable, "-m", "pointsmith", *args], cwd=self.cwd, env=env, input=stdin,
                           capture_output=True, text=True, timeout=300, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"pointsmith {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def write(self, name: str, text: str) -> Path:
        path = self.cwd / name
        path.write_text(text)
        return path


@dataclass
class Live:
    base: str
    admin: str
    client: str
    http: httpx.Client

    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.request(method, self.base + path, headers=headers, **kwargs)


@pytest.fixture
def cli(fresh_database: str, tmp_path: Path) -> Cli:
    return Cli(fresh_database, tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(url: str, tmp: Path, *options: str, admin: str = "", client: str = "") -> Iterator[tuple[Live, Path]]:
    """A real `pointsmith serve` on a free port (with `options`), ready to answer; and its log file."""
    port = _free_port()
    log_path = tmp / f"server-{port}.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pointsmith", "serve", "--port", str(port), *options], cwd=tmp,
                            env={**os.environ, "POINTSMITH_DATABASE_URL": url}, stdout=log, stderr=subprocess.STDOUT)
    server = Live(f"http://127.0.0.1:{port}", admin, client, httpx.Client(timeout=30))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.call("GET", "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + log_path.read_text())
            time.sleep(0.1)
        yield server, log_path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        server.http.close()


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, Cli]]:
    """One server per test module and backend, on a database of its own."""
    tmp = tmp_path_factory.mktemp("live")
    url = create_database(backend, tmp)
    cli = Cli(url, tmp)
    admin = cli.json("keys", "create", "--scope", "admin")["key"]
    client = cli.json("keys", "create", "--scope", "client")["key"]
    try:
        with serving(url, tmp, admin=admin, client=client) as (server, _):
            yield server, cli
    finally:
        drop_database(url)


@pytest.fixture
def server(live: tuple[Live, Cli]) -> Live:
    return live[0]


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status, body
    assert {"type", "title", "detail"} <= set(body), body
    return body

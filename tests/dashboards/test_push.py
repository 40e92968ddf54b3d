"""`finsentry dashboards push` against a local HTTP server that records every request.

Grafana itself cannot run on these machines, so `FakeGrafana` is a stand-in: a real HTTP server
on 127.0.0.1 that implements the few endpoints push uses (health, folders, datasources by uid,
dashboards by uid and /dashboards/db) with Grafana's status codes and bearer-token check, and
records method, path, body and Authorization header. The test checks the endpoints and bodies,
that a second push writes nothing, and the one-line errors for 401, 403, 404 and no server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from finsentry.broker import free_port
from finsentry.cli import cli
from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.grafana import build

TOKEN = "glsa_test_token"  # noqa: S105 - a test value
VIEWER = "glsa_viewer_token"  # noqa: S105 - authenticates but may not write


@dataclass
class FakeGrafana:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any, str]] = field(default_factory=list)

    def handle(self, method: str, path: str, body: Any, auth: str) -> tuple[int, Any]:
        self.requests.append((method, path, body, auth))
        if path == "/api/health":
            return 200, {"database": "ok", "version": "11.6.0"}
        if auth not in (f"Bearer {TOKEN}", f"Bearer {VIEWER}"):
            return 401, {"message": "Unauthorized"}
        if method != "GET" and auth == f"Bearer {VIEWER}":
            return 403, {"message": "Permission denied"}
        if path.startswith("/api/folders/") and method == "GET":
            uid = path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "nf"})
        if path == "/api/folders" and method == "POST":
            self.folders[body["uid"]] = {**body, "version": 1}
            return 200, self.folders[body["uid"]]
        if path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            if method == "GET":
                found = self.datasources.get(uid)
                return (200, found) if found else (404, {"message": "Data source not found"})
            self.datasources[uid] = self._stored_datasource(body)
            return 200, {"message": "Datasource updated"}
        if path == "/api/datasources" and method == "POST":
            self.datasources[body["uid"]] = self._stored_datasource(body)
            return 200, {"message": "Datasource added", "id": 1}
        if path.startswith("/api/dashboards/uid/") and method == "GET":
            uid = path.rsplit("/", 1)[1]
            found = self.dashboards.get(uid)
            return (200, found) if found else (404, {"message": "Dashboard not found"})
        if path == "/api/dashboards/db" and method == "POST":
            dashboard = body["dashboard"]
            old = self.dashboards.get(dashboard["uid"])
            version = old["dashboard"]["version"] + 1 if old else 1
            self.dashboards[dashboard["uid"]] = {
                "dashboard": {**dashboard, "id": 7, "version": version},
                "meta": {"folderUid": body["folderUid"]}}
            return 200, {"status": "success", "uid": dashboard["uid"], "version": version}
        return 404, {"message": "Not found"}

    @staticmethod
    def _stored_datasource(body: dict[str, Any]) -> dict[str, Any]:
        stored = {k: v for k, v in body.items() if k != "secureJsonData"}
        stored["secureJsonFields"] = {k: True for k in body.get("secureJsonData", {})}
        return stored

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.requests if m != "GET"]


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = fake.handle(self.command, self.path, body,
                                         self.headers.get("Authorization", ""))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, token: str = TOKEN) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["dashboards", "push", "--url", url, "--token", token,
                                      "--timeout", "3"])
    if result.exception and not isinstance(result.exception, SystemExit):
        from finsentry.errors import FinsentryError

        assert isinstance(result.exception, FinsentryError), repr(result.exception)
        return 2, f"error: {result.exception}"
    return result.exit_code, result.output


def test_push_creates_everything_then_changes_nothing(grafana: tuple[FakeGrafana, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = grafana
    monkeypatch.setenv("CLICKHOUSE_GRAFANA_PASSWORD", "s3cret")
    code, out = run(url)
    assert code == 0, out
    assert "folder finsentry: created" in out
    assert "datasource finsentry-clickhouse: created" in out
    assert out.count(": created") == 2 + len(DASHBOARDS)
    writes = fake.writes()
    assert writes[:2] == [("POST", "/api/folders"), ("POST", "/api/datasources")]
    assert writes[2:] == [("POST", "/api/dashboards/db")] * len(DASHBOARDS)
    assert all(auth == f"Bearer {TOKEN}" for _, path, _, auth in fake.requests
               if path != "/api/health")
    posted = {b["dashboard"]["uid"]: b for m, p, b, _ in fake.requests
              if p == "/api/dashboards/db"}
    for spec in DASHBOARDS:
        body = posted[spec.uid]
        assert body["folderUid"] == "finsentry" and body["overwrite"] is True
        assert {k: v for k, v in body["dashboard"].items() if k != "id"} == build(spec)
    (datasource_body,) = [b for m, p, b, _ in fake.requests if p == "/api/datasources"]
    assert datasource_body["type"] == "grafana-clickhouse-datasource"
    assert datasource_body["jsonData"]["username"] == "grafana"
    assert datasource_body["secureJsonData"] == {"password": "s3cret"}

    fake.requests.clear()
    code, again = run(url)
    assert code == 0, again
    assert fake.writes() == [], "a second push must not write anything"
    assert again.count(": unchanged") == 2 + len(DASHBOARDS)


def test_push_updates_a_changed_dashboard_only(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    assert run(url)[0] == 0
    fake.dashboards["finsentry-alerts"]["dashboard"]["title"] = "edited in the UI"
    fake.requests.clear()
    code, out = run(url)
    assert code == 0
    assert "dashboard finsentry-alerts: updated" in out
    assert fake.writes() == [("POST", "/api/dashboards/db")]


def test_errors_are_one_line(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    code, out = run(url, token="wrong")  # noqa: S106
    assert code != 0 and "401" in out and url in out and len(out.strip().splitlines()) == 1
    code, out = run(url, token=VIEWER)
    assert code != 0 and "403" in out and len(out.strip().splitlines()) == 1
    code, out = run(url + "/not-grafana")
    assert code != 0 and "404" in out and "--url" in out
    dead = f"http://127.0.0.1:{free_port()}"
    code, out = run(dead)
    assert code != 0 and "cannot reach Grafana" in out and dead in out
    assert fake.writes() == [("POST", "/api/folders")] or fake.writes() == []


def test_main_prints_the_error_without_a_traceback(grafana: tuple[FakeGrafana, str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from finsentry.cli import main

    _, url = grafana
    with pytest.raises(SystemExit) as exit_info:
        main(["dashboards", "push", "--url", url, "--token", "wrong"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Grafana at") and "401" in err and "Traceback" not in err

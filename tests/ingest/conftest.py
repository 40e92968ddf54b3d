"""A real local HTTP server (stdlib http.server in a thread) serving the recorded fixtures.

Routes can script failures (429 with Retry-After, 503 bursts), redirects, ETag/Last-Modified
validation and robots.txt, so the crawler is exercised over real sockets and real HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from finsentry.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
ALIASES = {
    "AAPL": ["Apple", "Apple Inc.", "0000320193"],
    "MSFT": ["Microsoft"],
    "NVDA": ["Nvidia", "NVIDIA"],
    "ACMR": ["Acme Robotics"],
    "600519.SS": ["贵州茅台", "茅台"],
}


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    # responses served (in order) before the normal one: (status, headers)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0  # stall before answering (timeouts)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int


class FixtureServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[tuple[str, frozenset[tuple[str, str]] | None], Route] = {}
        self.hits: list[Hit] = []
        self.robots = "User-agent: *\nDisallow: /private/\n"
        self.inflight: dict[str, int] = {}
        self.max_inflight: dict[str, int] = {}  # most requests to a path at once (overlaps)
        self._count_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                path = urlsplit(self.path).path
                with server._count_lock:
                    server.inflight[path] = server.inflight.get(path, 0) + 1
                    server.max_inflight[path] = max(server.max_inflight.get(path, 0),
                                                    server.inflight[path])
                try:
                    server._serve(self)
                finally:
                    with server._count_lock:
                        server.inflight[path] -= 1

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = str(self.httpd.server_address[0]), self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, route: Route, query: dict[str, str] | None = None) -> Route:
        key = frozenset(query.items()) if query is not None else None
        self.routes[(path, key)] = route
        return route

    def add_file(self, path: str, fixture: str, content_type: str, *,
                 query: dict[str, str] | None = None, **kw: Any) -> Route:
        return self.add(path, Route(body=(FIXTURES / fixture).read_bytes(),
                                    content_type=content_type, **kw), query)

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if urlsplit(h.path).path == path]

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        headers = {k.lower(): v for k, v in req.headers.items()}
        if parts.path == "/robots.txt" and ("/robots.txt", None) not in self.routes:
            route: Route | None = Route(body=self.robots.encode(), content_type="text/plain")
        else:
            query = frozenset(parse_qsl(parts.query))
            route = self.routes.get((parts.path, query)) or self.routes.get((parts.path, None))
        if route is None:
            return self._send(req, req.path, headers, 404, {"Content-Type": "text/plain"},
                              b"not found")
        if route.script:
            status, extra = route.script.pop(0)
            return self._send(req, req.path, headers, status,
                              {"Content-Type": "text/plain", **extra}, b"try again")
        if route.delay_s:
            time.sleep(route.delay_s)
        out = {"Content-Type": route.content_type, **route.headers}
        if route.etag:
            out["ETag"] = route.etag
        if route.last_modified:
            out["Last-Modified"] = route.last_modified
        fresh = (route.etag and headers.get("if-none-match") == route.etag) or (
            route.last_modified and headers.get("if-modified-since") == route.last_modified)
        if fresh:
            return self._send(req, req.path, headers, 304, out, b"")
        self._send(req, req.path, headers, route.status, out, route.body)

    def _send(self, req: BaseHTTPRequestHandler, path: str, headers: dict[str, str],
              status: int, out: dict[str, str], body: bytes) -> None:
        self.hits.append(Hit(path, headers, status))
        req.send_response(status)
        for k, v in out.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if body and status != 304:
            req.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    srv = FixtureServer()
    yield srv
    srv.close()


def make_settings(state_dir: Path, sources: list[dict[str, Any]], *,
                  bootstrap: str = "127.0.0.1:9", kafka: dict[str, Any] | None = None,
                  **ingest: Any) -> Settings:
    """Test settings: the fixture server's 127.0.0.1 is allowed explicitly, backoff is short."""
    cfg: dict[str, Any] = {
        "state_dir": state_dir, "sources": sources, "aliases": ALIASES,
        "allow_networks": ["127.0.0.1/32"], "host_min_interval_s": 0.0,
        "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0,
        "send_timeout_s": 3.0, "user_agent": "finsentry-tests/0.1 (ops@example.com)",
    }
    cfg.update(ingest)
    return Settings.model_validate(
        {"ingest": cfg, "kafka": {"bootstrap_servers": bootstrap, **(kafka or {})}})

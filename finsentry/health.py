"""Health that tells the truth: `/healthz` and Prometheus `/metrics` for every long-running service.

    server = start_health_server(settings, "alerts", default_checks(settings, store))
    server.add_check("scheduler", lambda: None if scheduler.running else "scheduler stopped")
    server.metrics.documents_in.inc(64)
    ...
    server.stop()   # start_health_server returns None when health.enabled is false

Checks are plain callables returning None (healthy) or a one-line reason. They run on a
background thread every `health.check_interval_s`, each bounded by `health.check_timeout_s`, so
/healthz answers at once from the latest results: 200 `{"status": "ok", ...}` or 503
`{"status": "unhealthy", "reasons": {check: reason}}`. A check that raises or hangs counts as
failing. The HTTP server is the standard library's (one thread per request); metrics are
prometheus-client's, in a registry per server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from finsentry.config import ClickHouseSettings, KafkaSettings, Settings
from finsentry.errors import FinsentryError
from finsentry.sanitize import inert

log = logging.getLogger(__name__)
CheckFn = Callable[[], str | None]


@dataclass(frozen=True)
class Check:
    name: str
    fn: CheckFn


class Metrics:
    """The pipeline's Prometheus metrics (one registry per service process)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.documents_in = Counter("finsentry_documents_in", "Messages taken from Kafka",
                                    registry=r)
        self.documents_stored = Counter("finsentry_documents_stored",
                                        "Rows inserted into ClickHouse", registry=r)
        self.dead_lettered = Counter("finsentry_documents_dead_lettered",
                                     "Messages sent to the dead-letter topic", registry=r)
        self.retries = Counter("finsentry_retries", "Retried store or broker operations",
                               registry=r)
        self.batch_latency = Histogram(
            "finsentry_batch_latency_seconds", "Classify + store time per batch", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.consumer_lag = Gauge("finsentry_consumer_lag",
                                  "Messages in assigned partitions not yet committed", registry=r)
        self.healthy = Gauge("finsentry_healthy", "1 when every health check passes",
                             ["service"], registry=r)
        self.service = service


class HealthServer:
    """Runs the checks in the background and serves /healthz and /metrics."""

    def __init__(self, host: str, port: int, service: str, checks: Sequence[Check],
                 interval_s: float = 5.0, timeout_s: float = 3.0) -> None:
        self.service = service
        self.checks = list(checks)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.metrics = Metrics(service)
        self.results: dict[str, str | None] = {}
        self.checked_at: float | None = None
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.checks)),
                                        thread_name_prefix=f"health-{service}")
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, name="health-http", daemon=True),
            threading.Thread(target=self._check_loop, name="health-checks", daemon=True),
        ]

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def add_check(self, name: str, fn: CheckFn) -> None:
        self.checks.append(Check(name, fn))

    def start(self) -> HealthServer:
        for thread in self._threads:
            thread.start()
        log.info("health endpoint of %s on http://%s:%d/healthz", self.service,
                 self._httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run_checks(self) -> dict[str, str | None]:
        """Run every check now (bounded by the timeout); keep and return the results."""
        futures = {c.name: self._pool.submit(_safe, c.fn) for c in self.checks}
        results: dict[str, str | None] = {}
        deadline = time.monotonic() + self.timeout_s
        for name, future in futures.items():
            try:
                results[name] = future.result(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = f"no answer within {self.timeout_s:g}s"
        self.results, self.checked_at = results, time.monotonic()
        self.metrics.healthy.labels(self.service).set(0 if self.reasons() else 1)
        return results

    def reasons(self) -> dict[str, str]:
        return {name: reason for name, reason in self.results.items() if reason}

    def status(self) -> tuple[int, dict[str, Any]]:
        if self.checked_at is None:
            return 503, {"status": "starting", "service": self.service, "reasons": {}}
        reasons = self.reasons()
        body: dict[str, Any] = {
            "status": "unhealthy" if reasons else "ok", "service": self.service,
            "checked_s_ago": round(time.monotonic() - self.checked_at, 1),
            "checks": {name: reason or "ok" for name, reason in self.results.items()},
        }
        if reasons:
            body["reasons"] = reasons
        return (503 if reasons else 200), body

    def _check_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_checks()
            except Exception:  # the loop must outlive any one check round
                log.exception("health checks of %s failed", self.service)
            self._stop.wait(self.interval_s)


def _safe(fn: CheckFn) -> str | None:
    try:
        return fn()
    except Exception as exc:  # a failing check is an unhealthy answer, not a crash
        return inert(f"{type(exc).__name__}: {exc}", 300)


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                code, body = server.status()
                self._send(code, "application/json", json.dumps(body).encode())
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.metrics.registry))
            else:
                self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

        def _send(self, code: int, ctype: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("health %s", inert(format % args, 300))

    return Handler


# -- reusable checks -------------------------------------------------------------------------


def clickhouse_check(settings: ClickHouseSettings, timeout_s: float = 3.0,
                     store: Any = None) -> CheckFn:
    """A real `SELECT 1` on its own connection (the worker's may be busy retrying a write).

    The embedded engine cannot be unreachable; there the store's own outage state is reported."""
    if settings.embedded:
        def embedded() -> str | None:
            outage = getattr(store, "outage", None)
            if outage is not None and outage.down:
                return f"{outage.what}: {outage.last_error}"
            return None
        return embedded

    def server() -> str | None:
        from clickhouse_driver import Client

        client = Client(host=settings.host, port=settings.port, user=settings.user,
                        password=settings.password.get_secret_value(), database="default",
                        secure=settings.secure, connect_timeout=timeout_s,
                        send_receive_timeout=timeout_s, client_name="finsentry-health")
        try:
            client.execute("SELECT 1")
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"ClickHouse {settings.host}:{settings.port}: {inert(first, 200)}"
        finally:
            client.disconnect()
        return None
    return server


def kafka_check(settings: KafkaSettings, timeout_s: float = 3.0) -> CheckFn:
    """A bootstrap broker answers an ApiVersions request (kafka-python's admin bootstrap).

    kafka-python keeps retrying a refused bootstrap until its timeout, so that timeout is kept
    below the check's: the reason then names Kafka and host:port, not just "no answer"."""
    own_ms = int(timeout_s * 700)

    def check() -> str | None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            client = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                      client_id="finsentry-health",
                                      request_timeout_ms=own_ms, bootstrap_timeout_ms=own_ms)
        except (KafkaError, OSError) as exc:
            return f"Kafka {settings.bootstrap_servers} unreachable: {inert(exc, 200)}"
        client.close()
        return None
    return check


def start_health_server(settings: Settings, service: str,
                        checks: Sequence[Check] = ()) -> HealthServer | None:
    """Start the endpoint for `service` (worker, ingest, alerts) unless health is disabled."""
    h = settings.health
    if not h.enabled:
        return None
    try:
        server = HealthServer(h.host, h.port_for(service), service, checks,
                              h.check_interval_s, h.check_timeout_s)
    except OSError as exc:
        raise FinsentryError(f"health endpoint of {service}: cannot listen on "
                             f"{h.host}:{h.port_for(service)}: {exc.strerror or exc}") from None
    return server.start()


def default_checks(settings: Settings, store: Any = None) -> list[Check]:
    """ClickHouse and Kafka reachability, as every pipeline service needs both."""
    t = settings.health.check_timeout_s
    return [Check("clickhouse", clickhouse_check(settings.clickhouse, t, store)),
            Check("kafka", kafka_check(settings.kafka, t))]

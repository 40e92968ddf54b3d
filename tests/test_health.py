"""finsentry.health: /healthz tells the truth, /metrics serves Prometheus text, and the
container probe (deploy/healthcheck.py healthz) follows /healthz."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from finsentry.broker import free_port
from finsentry.config import ClickHouseSettings, KafkaSettings
from finsentry.health import Check, HealthServer, clickhouse_check, kafka_check
from tests.fixtures.clickhouse import ClickHouseServer, ch_settings

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _probe(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), "healthz",
                           url], capture_output=True, text=True, timeout=30, check=False)


def test_healthz_follows_the_checks_and_metrics_are_served() -> None:
    state: dict[str, str | None] = {"store": "ClickHouse 10.0.0.1:9000: connection refused"}
    server = HealthServer("127.0.0.1", 0, "worker", [Check("clickhouse", lambda: state["store"])],
                          interval_s=0.2, timeout_s=0.5)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        deadline = time.monotonic() + 10
        while server.checked_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        code, body = _get(base + "/healthz")
        assert code == 503
        assert json.loads(body)["reasons"] == {"clickhouse": state["store"]}
        probe = _probe(base + "/healthz")
        assert probe.returncode == 1 and "connection refused" in probe.stderr

        state["store"] = None
        time.sleep(0.6)
        code, body = _get(base + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        assert _probe(base + "/healthz").returncode == 0

        server.metrics.documents_in.inc(64)
        server.metrics.batch_latency.observe(0.3)
        code, text = _get(base + "/metrics")
        assert code == 200
        assert b"finsentry_documents_in_total 64.0" in text
        assert b"finsentry_batch_latency_seconds_count 1.0" in text
        assert b'finsentry_healthy{service="worker"} 1.0' in text

        def hangs() -> str | None:
            time.sleep(5)
            return None

        server.add_check("hangs", hangs)
        results = server.run_checks()
        assert results["hangs"] == "no answer within 0.5s"
    finally:
        server.stop()


def test_real_checks(clickhouse_server: ClickHouseServer, kafka_bootstrap: str) -> None:
    up: ClickHouseSettings = ch_settings(host=clickhouse_server.host,
                                         port=clickhouse_server.port)
    assert clickhouse_check(up, 2.0)() is None
    port = free_port()
    down: ClickHouseSettings = ch_settings(host="127.0.0.1", port=port)
    started = time.monotonic()
    reason = clickhouse_check(down, 2.0)()
    assert reason and f"127.0.0.1:{port}" in reason and time.monotonic() - started < 5
    assert kafka_check(KafkaSettings(bootstrap_servers=kafka_bootstrap), 2.0)() is None
    reason = kafka_check(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), 1.0)()
    assert reason and f"127.0.0.1:{port}" in reason

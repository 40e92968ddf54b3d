"""`finsentry ingest run` serves /healthz and /metrics (finsentry.health): a real process, a real
broker, a bootstrap on a closed port, stopped by SIGTERM as an orchestrator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from finsentry.broker import free_port
from tests.streams.helpers import health_status

from .conftest import FixtureServer


def _config(tmp_path: Path, server: FixtureServer, bootstrap: str, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[kafka]
bootstrap_servers = "{bootstrap}"

[health]
check_interval_s = 0.5
check_timeout_s = 2.0

[ingest]
state_dir = "{tmp_path / name}"
allow_networks = ["127.0.0.1/32"]
host_min_interval_s = 0.0
send_timeout_s = 1.0

[[ingest.sources]]
kind = "rss"
name = "newsroom"
url = "{server.url('/feed.atom')}"
interval_s = 600
""", encoding="utf-8")
    return path


def _start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env["FINSENTRY_HEALTH__INGEST_PORT"] = str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "finsentry", "--config", str(config), "ingest", "run",
         "--log-level", "WARNING"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def _answer(proc: subprocess.Popen[bytes], url: str, log: Path, want: int,
            timeout: float = 90) -> dict[str, Any]:
    """The first answer with status `want` after the checks ran (503 "starting" before)."""
    deadline = time.monotonic() + timeout
    code, body = 0, dict[str, Any]()
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            code, body = health_status(url)
        except (urllib.error.URLError, ConnectionError):
            code, body = 0, {}
        if code == want and body.get("status") != "starting":
            return body
        time.sleep(0.3)
    raise AssertionError(f"{url}: last answer {code} {body}\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"ingest run ignored SIGTERM:\n{log.read_text()[-3000:]}") from None
    assert rc == 0, log.read_text()[-3000:]


def test_ingest_run_health_follows_the_broker(tmp_path: Path, server: FixtureServer,
                                              kafka_bootstrap: str) -> None:
    server.add_file("/feed.atom", "newsroom.atom", "application/atom+xml")
    cases = {"up": kafka_bootstrap, "closed": f"127.0.0.1:{free_port()}"}
    for name, bootstrap in cases.items():
        port, log = free_port(), tmp_path / f"{name}.log"
        proc = _start(_config(tmp_path, server, bootstrap, name), port, log)
        try:
            body = _answer(proc, f"http://127.0.0.1:{port}/healthz", log,
                                 200 if name == "up" else 503)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
                assert resp.status == 200
            assert f'finsentry_healthy{{service="ingest"}} {1.0 if name == "up" else 0.0}' \
                in metrics, metrics
        finally:
            if proc.poll() is None:
                _stop(proc, log)
        assert body["service"] == "ingest"
        if name == "up":
            assert body["status"] == "ok", body
            assert body["checks"] == {"kafka": "ok"}, body
        else:
            assert body["status"] == "unhealthy", body
            reason = body["reasons"]["kafka"]
            assert reason.startswith(f"Kafka {bootstrap} unreachable"), reason

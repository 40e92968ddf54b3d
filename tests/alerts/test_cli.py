"""`finsentry alerts check|test-rule|list|silence|reset` in process (chdb and 18.16) and
`alerts run` (a real subprocess against the 18.16 server, stopped with SIGTERM) with a real SMTP
server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.config import ClickHouseSettings
from finsentry.store import ScoredSink, migrate, open_store
from tests.alerts.conftest import AS_OF, SmtpServer, burst_docs, free_port, stream
from tests.fixtures.clickhouse import ClickHouseServer

RULE = {"type": "significance", "name": "neg", "baseline_hours": 24, "warmup_minutes": 60,
        "p_value": 1e-4, "realert_minutes": 600}
NOW = (AS_OF + timedelta(seconds=61)).isoformat()


def config_file(tmp_path: Path, ch: ClickHouseSettings, smtp_port: int) -> Path:
    clickhouse: dict[str, Any] = {"database": ch.database, "chdb_path": str(ch.chdb_path)}
    if ch.host:
        clickhouse.update(host=ch.host, port=ch.port)
    path = tmp_path / "finsentry.toml"
    path.write_text(tomli_w.dumps({
        "clickhouse": clickhouse,
        "alerts": {"smtp_port": smtp_port, "mail_to": ["ops@example.com"],
                   "smtp_retry_attempts": 1, "rules": [RULE]}}))
    return path


def test_check_test_rule_list_and_silences(store_settings: ClickHouseSettings,
                                          smtp: SmtpServer, tmp_path: Path) -> None:
    with open_store(store_settings) as store:
        migrate(store)
        ScoredSink(store).write(burst_docs())
    runner = CliRunner()
    base = ["--config", str(config_file(tmp_path, store_settings, smtp.port)), "alerts"]

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    dry = run("check", "--as-of", NOW)
    assert "firing" in dry and "ticker=AAPL" in dry and "TSLA" not in dry
    assert "1 events" in dry and "dry run" in dry and smtp.inbox.messages == []
    assert "0 events" in run("check", "--as-of", NOW, "--run-id", "replay-7")

    hist = run("test-rule", "neg", "--from", (AS_OF - timedelta(hours=2)).isoformat(),
               "--to", (AS_OF + timedelta(hours=6)).isoformat())
    assert "1 alerts fired, 1 resolved" in hist and "nothing written" in hist
    assert "0 alerts" in run("list")
    assert "no rule named nope" in run("test-rule", "nope", "--from", NOW, "--to", NOW,
                                       code=2)

    sent = run("check", "--as-of", NOW, "--notify")
    assert "1 fired" in sent and "2 sent" in sent and len(smtp.inbox.wait_for(1)) == 1  # log+email
    again = run("check", "--as-of", NOW, "--notify")
    assert "0 fired" in again and "0 sent" in again and len(smtp.inbox.messages) == 1
    listed = run("list", "--firing")
    assert "ticker=AAPL" in listed and "[notified]" in listed and "1 alerts" in listed

    added = run("silence", "add", "--key", "ticker=A*", "--for", "2h", "--comment", "earnings")
    silence_id = added.split()[1]
    assert "earnings" in run("silence", "list") and "1 silences" in run("silence", "list")
    assert "removed" in run("silence", "remove", silence_id)
    assert "0 silences" in run("silence", "list")
    assert "no active silence" in run("silence", "remove", silence_id, code=1)


def test_test_rule_writes_nothing_and_silence_by_rule_until(
        store_settings: ClickHouseSettings, smtp: SmtpServer, tmp_path: Path) -> None:
    """`test-rule --run` leaves every alert table empty (live and that run); a silence by rule
    `--until` a time holds the alert back; `list --firing` drops it once it resolved."""
    tables = ("alerts", "alert_state", "alert_deliveries", "alert_cycles")
    with open_store(store_settings) as store:
        migrate(store)
        ScoredSink(store).write([d.model_copy(update={"run_id": "replay-3"})
                                 for d in burst_docs()])
    runner = CliRunner()
    base = ["--config", str(config_file(tmp_path, store_settings, smtp.port)), "alerts"]

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def counts() -> dict[str, int]:
        with open_store(store_settings) as store:
            return {t: int(store.query(f"SELECT count() AS n FROM {t}")[0]["n"]) for t in tables}

    hist = run("test-rule", "neg", "--run", "replay-3", "--from",
               (AS_OF - timedelta(hours=2)).isoformat(), "--to",
               (AS_OF + timedelta(hours=6)).isoformat())
    assert "1 alerts fired, 1 resolved" in hist and "run replay-3" in hist
    assert counts() == dict.fromkeys(tables, 0)

    until = (AS_OF + timedelta(hours=1)).isoformat()
    added = run("silence", "add", "--rule", "ne*", "--until", until, "--comment", "drill")
    assert "until 2024-05-01 13:00 UTC" in added
    assert "0 silences" in run("silence", "list")  # expired by the wall clock ...
    listed = run("silence", "list", "--all")  # ... but kept
    assert "rule=ne* key=* until=2024-05-01 13:00 drill" in listed
    cycle = run("check", "--run-id", "replay-3", "--as-of", NOW, "--notify")
    assert "1 fired" in cycle and "1 silenced" in cycle and "0 sent" in cycle
    assert smtp.inbox.messages == []
    firing = run("list", "--run-id", "replay-3", "--firing")
    assert "ticker=AAPL" in firing and "silenced" in firing and "1 alerts" in firing
    later = (AS_OF + timedelta(hours=5)).isoformat()
    assert "1 resolved" in run("check", "--run-id", "replay-3", "--as-of", later, "--notify")
    assert "0 alerts" in run("list", "--run-id", "replay-3", "--firing")
    assert "resolved" in run("list", "--run-id", "replay-3")
    assert "0 alerts" in run("list")  # live untouched
    assert smtp.inbox.messages == []

    refused = runner.invoke(cli, [*base, "reset", "--run-id", "live"])
    assert refused.exit_code == 2 and "is the live run" in refused.output
    assert "state of 1 rules" in run("reset", "--run-id", "replay-3")
    deadline = time.monotonic() + 20  # mutations are asynchronous on the 18.16 server
    while counts()["alerts"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "0 alerts" in run("list", "--run-id", "replay-3")


def test_check_notify_exits_nonzero_when_delivery_fails(store_settings: ClickHouseSettings,
                                                        tmp_path: Path) -> None:
    with open_store(store_settings) as store:
        migrate(store)
        ScoredSink(store).write(burst_docs())
    config = config_file(tmp_path, store_settings, free_port())  # nothing listens there
    result = CliRunner().invoke(cli, ["--config", str(config), "alerts", "check", "--as-of",
                                      NOW, "--notify"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.output and "email to ops@example.com" in result.output


def test_run_service_mails_and_stops_on_sigterm(clickhouse_server: ClickHouseServer,
                                                smtp: SmtpServer, tmp_path: Path) -> None:
    ch = ClickHouseSettings.model_validate({
        "host": clickhouse_server.host, "port": clickhouse_server.port,
        "database": f"t_{uuid.uuid4().hex[:12]}", "retry_attempts": 2})
    health_port = free_port()
    try:
        with open_store(ch) as store:
            migrate(store)
            # the burst ends in the minute before last: closed (with 60 s lateness) right away
            now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
            ScoredSink(store).write(stream("AAPL", baseline_neg=0.1, window_docs=10,
                                           window_neg=9, as_of=now))
        env = {**os.environ, "FINSENTRY_CONFIG": str(config_file(tmp_path, ch, smtp.port)),
               "FINSENTRY_ALERTS__ALLOWED_LATENESS_S": "0",
               "FINSENTRY_HEALTH__ALERTS_PORT": str(health_port)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "alerts", "run", "--interval", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            messages = smtp.inbox.wait_for(1, timeout=90)
            # the service's /healthz (ClickHouse reachable) and Prometheus /metrics
            base = f"http://127.0.0.1:{health_port}"
            with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:  # noqa: S310
                assert resp.status == 200
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:  # noqa: S310
                assert resp.status == 200
            time.sleep(3)  # a few more 1 s cycles: nothing new
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(messages) == 1 and "AAPL" in messages[0]["Subject"], err
        assert "stopping" in err and "2 sent" in err and "0 sent" in err, err
    finally:
        with open_store(ch) as store:
            store.execute(f"DROP DATABASE IF EXISTS {ch.database}")

"""`finsentry alerts check` (in process, chdb and 18.16) and `finsentry alerts run` (a real
subprocess against the 18.16 server, stopped with SIGTERM) with a real SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from click.testing import CliRunner

from finsentry.alerts.base import window_end_for
from finsentry.cli import cli
from finsentry.config import ClickHouseSettings
from finsentry.store import ScoredSink, migrate, open_store
from tests.alerts.conftest import AS_OF, SmtpServer, burst_docs, stream
from tests.fixtures.clickhouse import ClickHouseServer

RULE = {"type": "negative_spike", "name": "spike", "min_docs": 5, "threshold": 0.5}


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


def test_check_dry_run_then_notify(store_settings: ClickHouseSettings, smtp: SmtpServer,
                                   tmp_path: Path) -> None:
    with open_store(store_settings) as store:
        migrate(store)
        ScoredSink(store).write(burst_docs())
        config = config_file(tmp_path, store_settings, smtp.port)
        runner = CliRunner()
        args = ["--config", str(config), "alerts", "check", "--as-of", AS_OF.isoformat()]

        dry = runner.invoke(cli, args, catch_exceptions=False)
        assert dry.exit_code == 0, dry.output
        assert "new" in dry.output and "ticker=AAPL" in dry.output and "TSLA" not in dry.output
        assert "1 matches" in dry.output and "dry run" in dry.output
        assert store.query("SELECT count() AS n FROM alerts")[0]["n"] == 0
        assert smtp.inbox.messages == []

        other = runner.invoke(cli, [*args, "--run-id", "replay-7"], catch_exceptions=False)
        assert "0 matches" in other.output and "run replay-7" in other.output

        sent = runner.invoke(cli, [*args, "--notify"], catch_exceptions=False)
        assert sent.exit_code == 0, sent.output
        assert "[notified]" in sent.output and "1 sent" in sent.output
        assert len(smtp.inbox.wait_for(1)) == 1
        again = runner.invoke(cli, [*args, "--notify"], catch_exceptions=False)
        assert "duplicate" in again.output and "0 sent" in again.output
        assert len(smtp.inbox.messages) == 1


def test_run_service_mails_and_stops_on_sigterm(clickhouse_server: ClickHouseServer,
                                                smtp: SmtpServer, tmp_path: Path) -> None:
    ch = ClickHouseSettings.model_validate({
        "host": clickhouse_server.host, "port": clickhouse_server.port,
        "database": f"t_{uuid.uuid4().hex[:12]}", "retry_attempts": 2})
    try:
        with open_store(ch) as store:
            migrate(store)
            now = window_end_for(datetime.now(UTC))
            ScoredSink(store).write(stream("AAPL", baseline_neg=0.1, window_docs=10,
                                           window_neg=9, as_of=now))
        env = {**os.environ, "FINSENTRY_CONFIG": str(config_file(tmp_path, ch, smtp.port))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "alerts", "run", "--interval", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            messages = smtp.inbox.wait_for(1, timeout=90)
            time.sleep(3)  # a few more 1 s cycles: realert must keep them quiet
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(messages) == 1 and "AAPL" in messages[0]["Subject"], err
        assert "stopping" in err and "1 sent" in err and "0 sent" in err, err  # later cycles
    finally:
        with open_store(ch) as store:
            store.execute(f"DROP DATABASE IF EXISTS {ch.database}")
